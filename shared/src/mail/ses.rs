//! Sending through Amazon SES v2 `SendEmail`, from `EMAIL_FROM`. Locally
//! `AWS_ENDPOINT_URL_SESV2` points the client at `aws-ses-v2-local`.

use super::{Mail, MailError, Mailer};
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{DisplayErrorContext, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

/// SES, from one sender address.
#[derive(Clone)]
pub struct SesMailer {
    client: Client,
    from: String,
}

impl SesMailer {
    /// Sends as `from` through `client` (built once per cold start).
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
        }
    }

    /// SES at `endpoint` (aws-ses-v2-local, a test server) with dummy credentials, and `from`.
    pub async fn local(endpoint: &str, from: impl Into<String>) -> Self {
        Self::new(Client::new(&crate::aws::local_config(endpoint).await), from)
    }

    /// A client from the standard AWS environment, and `from`.
    pub async fn from_env(from: impl Into<String>) -> Self {
        Self::new(Client::new(&crate::aws::config_from_env().await), from)
    }
}

fn content(text: &str) -> Content {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .expect("content data is set")
}

impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = Message::builder()
            .subject(content(&mail.subject))
            .body(Body::builder().text(content(&mail.text)).build())
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        sent.map(|_| ()).map_err(|e| {
            let hint = match &e {
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                    "SES is unreachable: locally, is aws-ses-v2-local running (`make dev` starts it)? "
                }
                _ => "",
            };
            // The error names the operation and SES's reason, never the message's text.
            MailError(format!("{hint}{}", DisplayErrorContext(&e)))
        })
    }
}
