//! OCI images for the sandbox: references, registry pulls, the shared blob
//! store, and layers applied to a root filesystem as the image spec says.

pub mod unpack;
