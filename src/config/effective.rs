//! placeholder: effective
