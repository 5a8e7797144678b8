//! Seeded DAG shapes for the swarm suite: plain edge lists, converted by each bench.
