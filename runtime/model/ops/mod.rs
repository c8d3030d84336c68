//! Ops zipvox adds to tract: corrected or fused forms of ONNX subgraphs. Each is registered in
//! tract-onnx's op registry (`onnx::onnx_framework`) under the ONNX node type it handles or the
//! node type a load-time rewrite (`rewrite`) emits.

pub mod conv2d;
pub mod dense;
pub mod depthwise_conv;
pub mod elementwise;
pub mod matmul;
pub mod move_axis;
pub mod quant_matmul;
pub mod range;
pub mod reductions;
pub mod select;
pub mod swoosh;

/// Frees the calling thread's per-op scratch buffers (conv front end, depthwise convolutions,
/// quantized activations). The load's trial chunk runs on the loading thread, which in the
/// daemon and the Wyoming server never runs the encoder again: without this, ~0.6 MB (3.3M
/// model) would stay allocated there for the life of the process. A thread that goes on
/// decoding just allocates them again on its next chunk.
pub fn release_thread_scratch() {
    conv2d::release_scratch();
    depthwise_conv::release_scratch();
    quant_matmul::release_scratch();
}
