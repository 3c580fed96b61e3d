//! octet-tools: the library behind the `octet` command line (converter, model inventories, exit
//! codes), shared with the integration tests so they convert models exactly as users do.

pub mod convert;
pub mod exit;
pub mod inventory;
pub mod model_path;
pub mod report;
