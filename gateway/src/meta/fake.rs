//! A fake meta-server for unit tests: a `hamster.v1.Meta` gRPC service on
//! a loopback port, without TLS, whose every call is answered by a
//! closure given the call's path and its request body (gRPC-framed: a
//! compression byte and a 4-byte length before the message).

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tonic::Status;
use tonic::transport::Channel;

/// What the fake answers a call: `framed` message bytes, or a status.
type Answerer = dyn Fn(&str, &[u8]) -> Result<Bytes, Status> + Send + Sync;

#[derive(Clone)]
struct FakeMeta(Arc<Answerer>);

impl tonic::server::NamedService for FakeMeta {
    const NAME: &'static str = "hamster.v1.Meta";
}

/// One gRPC answer frame, then an OK trailer, then the end.
struct Answer(Option<Bytes>, bool);

impl tonic::codegen::Body for Answer {
    type Data = Bytes;
    type Error = Status;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Status>>> {
        if let Some(data) = self.0.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
        }
        if std::mem::replace(&mut self.1, true) {
            return Poll::Ready(None);
        }
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        Poll::Ready(Some(Ok(hyper::body::Frame::trailers(t))))
    }
}

/// `msg` as one gRPC frame: no compression, its length, its bytes.
pub(crate) fn framed(msg: &impl prost::Message) -> Bytes {
    let body = msg.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for FakeMeta {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let answer = self.0.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            let mut body = req.into_body();
            let mut bytes = Vec::new();
            while let Some(Ok(frame)) = std::future::poll_fn(|cx| {
                tonic::codegen::Body::poll_frame(std::pin::Pin::new(&mut body), cx)
            })
            .await
            {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Ok(match answer(&path, &bytes) {
                Ok(data) => {
                    let mut r =
                        http::Response::new(tonic::body::Body::new(Answer(Some(data), false)));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    r
                }
                Err(status) => status.into_http(),
            })
        })
    }
}

/// Serves a fake meta-server that answers each call with `answer(path,
/// request body)`; its address, and a (lazy) channel to it.
pub(crate) async fn serve(
    answer: impl Fn(&str, &[u8]) -> Result<Bytes, Status> + Send + Sync + 'static,
) -> (String, Channel) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FakeMeta(Arc::new(answer)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    (addr, channel)
}
