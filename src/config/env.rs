//! placeholder: env
