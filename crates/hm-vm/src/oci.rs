//! OCI images for the sandbox: references, registry pulls, the shared blob
//! store, and layers applied to a root filesystem as the image spec says.

pub mod blobs;
pub mod layout;
pub mod pack;
pub mod platform;
pub mod pull;
pub mod reference;
pub mod remote;
pub mod unpack;

pub use blobs::BlobStore;
pub use platform::Platform;
pub use pull::{pull, PullError, PullEvent, PullObserver, PullSettings, Pulled};
pub use reference::{is_loopback, ImageName};
