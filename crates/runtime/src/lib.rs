//! hivekit-runtime (under construction).
