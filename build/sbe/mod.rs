//! A small SBE code generator for the subset of SBE 1.0 the tensorpool schemas use.
pub mod emit;
pub mod model;
