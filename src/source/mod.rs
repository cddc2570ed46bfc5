//! Sources: directives (and units, and people) kept true from where the agency keeps them.
//! A source's bytes are read ([`fetch`]), laid out as a table ([`table`]), mapped onto
//! nhacviec's fields ([`map`]), validated row by row as `import` validates a file, then
//! applied in one transaction ([`sync`]) with every change in the directive's history.

pub mod alert;
pub mod fetch;
pub mod map;
pub mod sync;
pub mod table;

pub use sync::{sync_source, SyncReport};
