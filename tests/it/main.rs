//! The integration tests, one binary: each module drives the real `nhacviec` (and
//! `nhacviec-bench`) binaries against real peers — SQLite files, PostgreSQL, an SMTP server,
//! HTTP stand-ins — with the support code shared once.

// Tests may unwrap: a failed unwrap is their assertion.
#![allow(clippy::unwrap_used)]

mod support;

mod answers;
mod bench_smoke;
mod chaos;
mod chat_channels;
mod cli;
mod config_hardening;
mod daemon;
mod delivery_smtp;
mod digest;
mod docs;
mod faults;
mod import_hardening;
mod planned_delivery;
mod planner_rules;
mod sources;
mod store_backends;
mod systemd_unit;
mod voice;
