//! `admin::Mailer` on Amazon SES (API v2 `SendEmail`): the console's
//! invitations and temporary passwords in AWS.
//!
//! A mail's body may hold a temporary password, so it goes to SES and
//! nowhere else: not into logs, not into error messages (which are built
//! from SES's error code and message and the transport's failure only).

use admin::{Mail, MailError, Mailer};
use async_trait::async_trait;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sesv2::Client;

/// SES error codes that a later, unchanged request may get past.
const RETRYABLE_CODES: &[&str] = &[
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServiceError",
];

/// Sends the console's mail through SES from one verified identity.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    from: String,
}

impl SesMailer {
    /// `from` is the sender address (`MAIL_FROM`); SES accepts it only if
    /// it, or its domain, is a verified identity.
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
        }
    }

    pub fn from_address(&self) -> &str {
        &self.from
    }
}

fn utf8(text: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|_| MailError {
            message: "SES SendEmail: could not build the message".into(),
            retryable: false,
        })
}

/// What a failed `SendEmail` means for the caller. Throttling, SES's 5xx
/// answers, timeouts and transport failures are retryable; anything SES
/// refused on its merits (an unverified sender, a rejected message, a
/// paused account, a bad address) is not.
pub fn classify(err: &SdkError<SendEmailError>) -> MailError {
    let (message, retryable) = match err {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let service = context.err();
            let code = service.code().unwrap_or("unknown");
            let retryable = status >= 500 || status == 429 || RETRYABLE_CODES.contains(&code);
            let detail = service.message().unwrap_or("no message");
            (format!("HTTP {status} {code}: {detail}"), retryable)
        }
        SdkError::TimeoutError(_) => ("timed out".to_owned(), true),
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_timeout() {
                "timed out"
            } else if failure.is_io() {
                "connection failed"
            } else {
                "request not sent"
            };
            (kind.to_owned(), true)
        }
        SdkError::ResponseError(_) => ("unreadable response".to_owned(), true),
        SdkError::ConstructionFailure(_) => ("request could not be built".to_owned(), false),
        _ => ("unexpected failure".to_owned(), false),
    };
    MailError {
        message: format!("SES SendEmail: {message}"),
        retryable,
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(Body::builder().text(utf8(&mail.body)?).build())
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match sent {
            Ok(output) => {
                tracing::info!(
                    to = %mail.to,
                    subject = %mail.subject,
                    message_id = output.message_id().unwrap_or_default(),
                    "mail sent through SES"
                );
                Ok(())
            }
            Err(err) => {
                let err = classify(&err);
                tracing::warn!(
                    to = %mail.to,
                    subject = %mail.subject,
                    error = %err.message,
                    retryable = err.retryable,
                    "SES did not send a mail"
                );
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sesv2::config::http::HttpResponse;
    use aws_sdk_sesv2::error::ErrorMetadata;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn service_error(status: u16, code: &str) -> SdkError<SendEmailError> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("the service's words")
            .build();
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(SendEmailError::generic(meta), raw)
    }

    #[test]
    fn throttling_and_server_errors_are_retryable_refusals_are_not() {
        for (status, code) in [
            (429, "TooManyRequestsException"),
            (400, "ThrottlingException"),
            (500, "InternalFailure"),
            (503, "ServiceUnavailable"),
        ] {
            let err = classify(&service_error(status, code));
            assert!(err.retryable, "{status} {code}: {}", err.message);
            assert!(err.message.contains(code), "{}", err.message);
        }
        for (status, code) in [
            (400, "MessageRejected"),
            (400, "MailFromDomainNotVerifiedException"),
            (400, "SendingPausedException"),
            (400, "AccountSuspendedException"),
            (400, "BadRequestException"),
            (404, "NotFoundException"),
        ] {
            let err = classify(&service_error(status, code));
            assert!(!err.retryable, "{status} {code}: {}", err.message);
        }
    }
}
