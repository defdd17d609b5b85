//! The path of a gRPC call, `/package.Service/Method`: read by the layers that name a call in
//! metrics, spans, logs, faults and retries.

/// Splits `/package.Service/Method` into its two halves.
pub fn split_grpc_path(path: &str) -> (&str, &str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_splits_into_service_and_method() {
        assert_eq!(
            split_grpc_path("/bookstore.users.v1.UsersService/GetUser"),
            ("bookstore.users.v1.UsersService", "GetUser")
        );
        assert_eq!(split_grpc_path("/only"), ("only", ""));
    }
}
