//! The weft server.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("weft.v1");
    /// For server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("weft_descriptor");
}
