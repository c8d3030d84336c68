//! Ops zipvox adds to tract: corrected or fused forms of ONNX subgraphs. Each is registered in
//! tract-onnx's op registry (`onnx::onnx_framework`) under the ONNX node type it handles or the
//! node type a load-time rewrite (`rewrite`) emits.

pub mod conv2d;
pub mod dense;
pub mod depthwise_conv;
pub mod elementwise;
pub mod matmul;
pub mod quant_matmul;
pub mod range;
pub mod reductions;
pub mod select;
pub mod swoosh;
