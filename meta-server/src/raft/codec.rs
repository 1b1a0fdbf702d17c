//! Raft messages in gRPC payloads: JSON of openraft's serde types.
//! JSON keeps the log and the wire readable while we are young; the
//! payload is opaque bytes in the contract, so the encoding can change
//! with a version byte later without touching the .proto.

use hamster_proto::pb::RaftPayload;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::grpc::errors::ServiceError;

pub fn encode<T: Serialize>(value: &T) -> Result<RaftPayload, ServiceError> {
    serde_json::to_vec(value)
        .map(|data| RaftPayload {
            data,
            blob: Vec::new(),
        })
        .map_err(|e| ServiceError::Internal(format!("encoding: {e}")))
}

pub fn decode<T: DeserializeOwned>(payload: &RaftPayload) -> Result<T, ServiceError> {
    serde_json::from_slice(&payload.data)
        .map_err(|e| ServiceError::Malformed(format!("malformed payload: {e}")))
}
