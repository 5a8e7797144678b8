//! Seeded scheduling-hint streams for the scheduler suites: plain data, converted by each bench.
