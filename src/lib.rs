//! nhacviec: reminds officers of their directives' deadlines, escalates overdue work up the
//! chain, and alarms when work is closed without being done.
//!
//! Data flows one way: config → store → planner → outbox → channels. Only the scheduler
//! reads the clock; everything else takes `now`.

pub mod app;
pub mod bench;
pub mod calendar;
pub mod channels;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod digest;
pub mod digest_render;
pub mod domain;
pub mod http;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod monthly;
pub mod notify;
pub mod outbox;
pub mod parallel;
pub mod planner;
pub mod policy;
pub mod preflight;
pub mod render;
pub mod reports;
pub mod scheduler;
pub mod store;
pub mod time;
