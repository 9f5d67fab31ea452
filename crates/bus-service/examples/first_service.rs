//! Your first service: `hello` answers the command `hello.Greet`.
use bus_service::{Context, HandlerError, Router, ServiceBuilder};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Greet {
    name: String,
}

#[derive(Serialize)]
struct Greeting {
    greeting: String,
}

async fn greet(ctx: Context, command: Greet) -> Result<(), HandlerError> {
    let greeting = format!("Hello, {}!", command.name);
    ctx.reply_success(&Greeting { greeting }).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), bus_service::RunError> {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://localhost".into());
    let router = Router::new().command("Greet", greet); // binds hello.Greet
    ServiceBuilder::new("hello").url(&url).run(router).await
}
