//! Sign-in throttling as clients meet it: the real gateway (`gateway::run`) on a loopback port,
//! its clients on real connections from addresses of their own (127.0.0.2, 127.0.0.3, …: Linux
//! routes all of 127/8 to lo), over a users service that knows two accounts. One address past
//! its budget leaves the others alone; one account attacked from many addresses is shut for
//! that account only, and right passwords cost an account nothing.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use clap::Parser;
use protos::users::v1::{
    self as us,
    users_service_server::{UsersService, UsersServiceServer},
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Request, Response, Status};

/// Users that knows `accounts` (email → password) and only signs in.
struct FakeUsers {
    accounts: HashMap<&'static str, &'static str>,
}

#[tonic::async_trait]
impl UsersService for FakeUsers {
    async fn create_user(
        &self,
        _: Request<us::CreateUserRequest>,
    ) -> Result<Response<us::CreateUserResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn sign_in(
        &self,
        request: Request<us::SignInRequest>,
    ) -> Result<Response<us::SignInResponse>, Status> {
        let r = request.into_inner();
        match self.accounts.get(r.email.as_str()) {
            Some(&password) if password == r.password => Ok(Response::new(us::SignInResponse {
                access_token: format!("token-of-{}", r.email),
                expires_in_seconds: 3600,
                user: Some(us::User {
                    id: "0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61".into(),
                    email: r.email,
                    ..Default::default()
                }),
            })),
            _ => Err(Status::unauthenticated("email or password is incorrect")),
        }
    }

    async fn get_user(
        &self,
        _: Request<us::GetUserRequest>,
    ) -> Result<Response<us::GetUserResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn update_user(
        &self,
        _: Request<us::UpdateUserRequest>,
    ) -> Result<Response<us::UpdateUserResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn delete_user(
        &self,
        _: Request<us::DeleteUserRequest>,
    ) -> Result<Response<us::DeleteUserResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn sign_out(
        &self,
        _: Request<us::SignOutRequest>,
    ) -> Result<Response<us::SignOutResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }
}

const ADA: &str = "ada@example.org";
const BOB: &str = "bob@example.org";
const RIGHT: &str = "correct horse battery";

/// The fake users service on a loopback port, SERVING; its URL.
async fn fake_users() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<UsersServiceServer<FakeUsers>>()
        .await;
    let users = FakeUsers {
        accounts: HashMap::from([(ADA, RIGHT), (BOB, RIGHT)]),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(UsersServiceServer::new(users))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

/// The real gateway, served by `gateway::run` on 127.0.0.1, until dropped.
struct Gateway {
    url: String,
    _stop: oneshot::Sender<()>,
}

async fn start_gateway(flags: &[&str]) -> Gateway {
    let users = fake_users().await;
    let nobody = crate::helpers::nobody().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut args = vec![
        "gateway",
        "--marketplace-url",
        &nobody,
        "--recommendations-url",
        &nobody,
        "--users-url",
        &users,
    ];
    args.extend_from_slice(flags);
    let config = gateway::Config::try_parse_from(args).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway::run(listener, admin, config, async move {
        let _ = stopped.await;
    }));
    let gateway = Gateway {
        url: format!("http://{addr}"),
        _stop: stop,
    };
    // Until the gateway's health watch has seen users SERVING (a call that spends no budget).
    let c = from(1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .get(format!(
                "{}/api/v1/users/0b0e5b4e-9a3c-4d55-8c1e-2f1e0c9d7a61",
                gateway.url
            ))
            .bearer_auth("a.b")
            .send()
            .await
            .unwrap();
        if r.status() != 503 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "users never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway
}

/// A client whose connections come from 127.0.0.`n`.
fn from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Signs in as `email` with `password` from `client`: the status, Retry-After and the body.
async fn sign_in(
    g: &Gateway,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> (u16, Option<u64>, Value) {
    let r = client
        .post(format!("{}/api/v1/sessions", g.url))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry_after, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn one_address_past_its_budget_leaves_other_addresses_alone() {
    let g = start_gateway(&[
        "--auth-rate-per-minute",
        "1",
        "--auth-rate-burst",
        "3",
        "--auth-account-rate-per-minute",
        "60",
        "--auth-account-rate-burst",
        "60",
    ])
    .await;
    // The connections really do come from the addresses asked for (else all would share one).
    let attacker = from(2);
    for i in 0..3 {
        let (status, _, body) =
            sign_in(&g, &attacker, &format!("guess-{i}@example.org"), "wrong").await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, retry_after, body) = sign_in(&g, &attacker, "guess-9@example.org", "wrong").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("address"),
        "{body}"
    );
    assert!((1..=60).contains(&retry_after.unwrap()), "{retry_after:?}");
    // Even the right password, from the spent address.
    assert_eq!(sign_in(&g, &attacker, ADA, RIGHT).await.0, 429);

    // Another address is untouched: its own burst, and a right password gets in.
    let reader = from(3);
    let (status, _, body) = sign_in(&g, &reader, ADA, RIGHT).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["access_token"], format!("token-of-{ADA}"));
    for _ in 0..2 {
        assert_eq!(sign_in(&g, &reader, BOB, "wrong").await.0, 401);
    }
    assert_eq!(sign_in(&g, &reader, BOB, "wrong").await.0, 429);
    assert_eq!(
        sign_in(&g, &from(4), BOB, RIGHT).await.0,
        201,
        "and a third address has its own"
    );
}

#[tokio::test]
async fn one_account_attacked_from_many_addresses_is_shut_for_that_account_only() {
    let g = start_gateway(&[
        "--auth-rate-per-minute",
        "60",
        "--auth-rate-burst",
        "3",
        "--auth-account-rate-per-minute",
        "1",
        "--auth-account-rate-burst",
        "4",
    ])
    .await;
    // Right passwords cost the account nothing: more sign-ins than its burst, all in.
    for n in 20..26 {
        let (status, _, body) = sign_in(&g, &from(n), ADA, RIGHT).await;
        assert_eq!(status, 201, "{body}");
    }
    // Four addresses, one wrong guess each: within every address's budget, and they add up
    // to the account's.
    for n in 10..14 {
        assert_eq!(sign_in(&g, &from(n), ADA, "wrong").await.0, 401);
    }
    let (status, retry_after, body) = sign_in(&g, &from(14), ADA, "wrong").await;
    assert_eq!(status, 429, "a fifth address: {body}");
    assert!(
        body["detail"].as_str().unwrap().contains("account"),
        "{body}"
    );
    assert!((1..=60).contains(&retry_after.unwrap()), "{retry_after:?}");
    // The email in other letters is the same account.
    assert_eq!(
        sign_in(&g, &from(15), "ADA@Example.org", "wrong").await.0,
        429
    );
    // While it is spent a right password is refused too (else every guess would be answered).
    assert_eq!(sign_in(&g, &from(16), ADA, RIGHT).await.0, 429);
    // Another account signs in fine, from an attacking address as from any other.
    assert_eq!(sign_in(&g, &from(10), BOB, RIGHT).await.0, 201);
    assert_eq!(sign_in(&g, &from(17), BOB, RIGHT).await.0, 201);
    assert_eq!(sign_in(&g, &from(17), BOB, "wrong").await.0, 401);
}

#[tokio::test]
async fn the_sign_in_form_draws_on_the_accounts_budget_too() {
    let g = start_gateway(&[
        "--auth-account-rate-per-minute",
        "1",
        "--auth-account-rate-burst",
        "1",
    ])
    .await;
    assert_eq!(sign_in(&g, &from(30), ADA, "wrong").await.0, 401);
    // The form, from another address: a browser's visit, then its post.
    let c = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 31)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let home = c.get(format!("{}/", g.url)).send().await.unwrap();
    let cookie = home
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .find(|c| c.contains("csrf"))
        .map(str::to_owned)
        .unwrap_or_default();
    let token = crate::helpers::form_token(&home.text().await.unwrap());
    let addr: SocketAddr = g.url.trim_start_matches("http://").parse().unwrap();
    let r = c
        .post(format!("{}/signin", g.url))
        .header("cookie", cookie)
        .header("origin", format!("http://{addr}"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("email", ADA), ("password", RIGHT), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/?notice=too-many-attempts#account"
    );
}
