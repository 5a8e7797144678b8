//! Seeded proposal sets for the lockfree and hive suites: plain data, converted by each bench.
