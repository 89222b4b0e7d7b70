"""`ionctl console`: the technician's keyboard-first terminal UI (Textual).

The flow: login -> device -> patient -> course or preset -> prescription (checked live against the site limits)
-> contact check -> skin check -> confirm -> run -> end (skin check after, adverse reaction, chart PDF).

`access` says who is at the bench (the login, the role a session needs, a session prepared in their name).
`controller` owns the session thread and knows nothing of Textual, so the logic is testable without the
UI; `app` and `screens` draw it. Importing this package does not import Textual: `ionctl --help` stays fast.
"""
