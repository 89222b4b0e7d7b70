"""Treatment courses (being built): the interface `ionctl run --course` uses."""

from __future__ import annotations

from typing import Any


class CourseRefused(Exception):
    """A course session that its plan does not allow now."""


def check_next(store: Any, course_id: int, now: Any = None) -> None:
    raise CourseRefused(f"course {course_id}: courses are not available yet")
