//! placeholder: logging
