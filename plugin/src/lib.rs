//! Reverie's VST3/CLAP plugin.
//!
//! The plugin itself (nice-plug, worker threads, lock-free rings, editor)
//! is built on the engine in a later step; until then this crate holds no
//! code, so nothing here can be mistaken for a working plugin.
