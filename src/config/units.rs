//! placeholder: units
