"""The throwaway PostgreSQL server of the clinic store's tests: `benchmarks.pgserver`, shared with the benchmarks
(see there), re-exported under the name the tests import."""

from benchmarks.pgserver import REQUIRE, SERVICE_ACCOUNT, PostgresServer, PostgresUnavailable, bindir

__all__ = ["REQUIRE", "SERVICE_ACCOUNT", "PostgresServer", "PostgresUnavailable", "bindir"]
