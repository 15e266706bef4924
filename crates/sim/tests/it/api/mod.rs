//! The simulated API server seen through real clients: kube-rs in-process
//! and over TCP, and the `kubectl` binary as a process.

mod common;
mod custom;
mod faults;
mod kube_client;
mod kubectl;
