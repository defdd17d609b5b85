//! The bookstore's gRPC contracts: generated message types, clients and servers for every service.
//! Everyone else imports `protos::<service>::v1::…`; nothing else generates code.
#![forbid(unsafe_code)]

pub mod codec;

/// The catalog of books.
pub mod marketplace {
    pub mod v1 {
        tonic::include_proto!("bookstore.marketplace.v1");
    }
}

/// Ratings and recommendations.
pub mod recommendations {
    pub mod v1 {
        tonic::include_proto!("bookstore.recommendations.v1");
    }
}

/// Accounts and tokens.
pub mod users {
    pub mod v1 {
        tonic::include_proto!("bookstore.users.v1");
    }
}

/// The encoded `FileDescriptorSet` of every bookstore proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/bookstore_descriptor.bin"));
