//! placeholder: validate
