//! A supervised client inside an actix-web application: HTTP handlers join topics and
//! push events through the client's address, and the supervisor restarts the client
//! (keeping its topics) if it stops.
//!
//! ```text
//! cargo run --example actix_web_app --features testing
//! cargo run --example actix_web_app --features testing -- ws://host:4000/socket TOKEN
//! ```
//!
//! The example starts the bundled test server (or, given a URL or `SLIPSTREAM_URL`,
//! connects to yours; see `examples/README.md`) and the web app on 127.0.0.1 (port 0),
//! calls its own endpoints once for the first of `SLIPSTREAM_TOPICS` (default
//! `room:web`), prints the answers and exits.

#[path = "support/target.rs"]
mod target;

use actix::{Addr, Supervisor};
use actix_slipstream::testing::TestServer;
use actix_slipstream::{Client, GetStatus, Join, Push, SlipstreamActor};
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

struct Relay;

impl SlipstreamActor for Relay {}

type Phoenix = web::Data<Addr<Client<Relay>>>;

async fn join(client: Phoenix, topic: web::Path<String>) -> HttpResponse {
    match client.send(Join::new(topic.into_inner(), json!({}))).await {
        Ok(Ok(response)) => {
            HttpResponse::Ok().json(json!({"joined": true, "response": response.as_json()}))
        }
        Ok(Err(e)) => HttpResponse::BadGateway().json(json!({"error": e.to_string()})),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({"error": e.to_string()})),
    }
}

async fn echo(
    client: Phoenix,
    topic: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> HttpResponse {
    match client
        .send(Push::new(topic.into_inner(), "echo", body.into_inner()))
        .await
    {
        Ok(Ok(reply)) => HttpResponse::Ok().json(
            json!({"status": reply.status.to_string(), "response": reply.response.as_json()}),
        ),
        Ok(Err(e)) => HttpResponse::BadGateway().json(json!({"error": e.to_string()})),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({"error": e.to_string()})),
    }
}

async fn status(client: Phoenix) -> HttpResponse {
    match client.send(GetStatus).await {
        Ok(s) => HttpResponse::Ok().json(json!({
            "connection": s.connection.to_string(),
            "topics": s.topics.iter().map(|t| json!({"topic": t.topic.as_str(), "status": t.status.to_string()})).collect::<Vec<_>>(),
        })),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({"error": e.to_string()})),
    }
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = target::Target::from_env();
    let phoenix = if target.bundled() {
        Some(TestServer::phoenix_demo().start().await?)
    } else {
        None
    };
    let config = target.config(phoenix.as_ref().map(TestServer::url));
    let topic = target.topics(&["room:web"]).remove(0);
    let client = Supervisor::start(move |_| Client::new(Relay, config));

    let data = web::Data::new(client);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/topics/{topic}", web::put().to(join))
            .route("/topics/{topic}/echo", web::post().to(echo))
            .route("/status", web::get().to(status))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))?;
    let addr = server.addrs()[0];
    let running = server.run();
    let handle = running.handle();
    actix_rt::spawn(running);
    println!("web app on http://{addr}");

    let http = awc::Client::default();
    let base = format!("http://{addr}");
    let mut r = http.put(format!("{base}/topics/{topic}")).send().await?;
    println!(
        "PUT /topics/{topic} -> {} {}",
        r.status(),
        String::from_utf8_lossy(&r.body().await?)
    );
    let mut r = http
        .post(format!("{base}/topics/{topic}/echo"))
        .send_json(&json!({"hi": 1}))
        .await?;
    println!(
        "POST /topics/{topic}/echo -> {} {}",
        r.status(),
        String::from_utf8_lossy(&r.body().await?)
    );
    let mut r = http.get(format!("{base}/status")).send().await?;
    println!(
        "GET /status -> {} {}",
        r.status(),
        String::from_utf8_lossy(&r.body().await?)
    );

    handle.stop(true).await;
    if let Some(phoenix) = phoenix {
        phoenix.stop().await?;
    }
    Ok(())
}
