//! Integration tests of the ranking service, with real parts: LightGBM lambdarank models
//! trained here on features `quire_featspec::assemble` computes, exported to ONNX by
//! `quire_onnx::export`, registered in a SQLite registry and artifact store in a temporary
//! directory, and the service on 127.0.0.1:0 answering over HTTP. Needs `ORT_DYLIB_PATH`
//! (`make setup`).

mod contract;
mod harness;
mod oip;
mod parity;
mod props;
mod refusals;
mod swap;
