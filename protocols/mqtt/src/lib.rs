//! mqgate's MQTT adapter (issue 3, in progress): the codec, topic translation and message
//! conversion have landed; the sessions follow.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod codec;
pub mod convert;
pub mod topic;
