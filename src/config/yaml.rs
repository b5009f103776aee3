//! placeholder: yaml
