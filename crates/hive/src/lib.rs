//! hivekit-hive (under construction).
