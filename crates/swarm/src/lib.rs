//! hivekit-swarm (under construction).
