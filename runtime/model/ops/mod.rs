//! Ops zipvox adds to tract: corrected or fused forms of ONNX subgraphs. Each is registered in
//! tract-onnx's op registry (`onnx::onnx_framework`) under the ONNX node type it handles or the
//! node type a load-time rewrite (`rewrite`) emits.

pub mod depthwise_conv;
pub mod quant_matmul;
pub mod range;
pub mod swoosh;
