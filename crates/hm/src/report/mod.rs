//! `hm report`: one self-contained HTML page of a recorded run, built from
//! its history (`crate::history`). [`timeline::Timeline`] turns the run's
//! events and plan into steps with times, outcomes and the critical path;
//! [`log::LogTail`] reads the end of each step's log; [`page::Page`]
//! writes the page.

pub mod log;
pub mod page;
pub mod timeline;
