//! Seeded agent sets for the hive suite: plain specifications, turned into agents by each bench.
