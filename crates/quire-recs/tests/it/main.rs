//! Integration tests against real Redis servers (standalone and a 3-node cluster) that the
//! harness starts on free loopback ports.

mod check;
mod cluster;
mod data;
mod harness;
mod publish;
mod reader;
