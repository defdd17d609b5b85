//! The codec every generated client and server uses: prost, with smaller per-call buffers.
//!
//! tonic's default codec starts each call's encode and decode buffers at 8 KiB. Every message of
//! these contracts but a page of books is well under 1 KiB (a `GetBook` answer is about 500
//! bytes), and an 8 KiB block is past glibc's per-thread cache (blocks up to 1,032 bytes), so
//! each took malloc's general path, twice per call on either side. Starting at 1 KiB keeps the
//! common call in that cache (0.7% of the gateway's instructions per GET, by callgrind); a larger
//! message grows its buffer as before.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Where each call's encode and decode buffers start.
pub const BUFFER_SIZE: usize = 1024;
/// tonic's own: how much a streaming encoder buffers before it yields (unchanged).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// prost's codec with [`BUFFER_SIZE`] buffers.
#[derive(Debug, Clone)]
pub struct Proto<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Proto<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for Proto<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }
}
