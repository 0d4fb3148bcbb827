//! Reads the weights out of an fp32 ONNX export of a BERT model.
//!
//! The model is decoded with prost into the types generated from the official onnx.proto
//! (formats/proto, scripts/gen-proto.sh); only the graph's nodes (inputs, outputs, op types) and
//! its FLOAT initializers are used.
//!
//! The export names most initializers after the PyTorch module (`...auto_model.encoder.layer.0
//! .attention.self.query.bias`), but Linear weights are unnamed `onnx::MatMul_*` tensors stored
//! transposed (in x out). Each is identified by following its MatMul to the Add whose other
//! input is the named bias, and is transposed back to PyTorch's (out x in).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use prost::Message;

use super::proto::onnx::tensor_proto::{DataLocation, DataType};
use super::proto::onnx::{ModelProto, NodeProto, TensorProto};

/// A float tensor from the graph.
#[derive(Clone, Debug)]
pub struct OnnxTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// A FLOAT tensor's values, checked against its dims; `None` for other element types (shapes and
/// indices, not weights).
fn float_tensor(t: TensorProto) -> Result<Option<OnnxTensor>> {
    if t.data_type != Some(DataType::Float as i32) {
        return Ok(None);
    }
    let name = t.name();
    if t.data_location == Some(DataLocation::External as i32) {
        bail!("ONNX tensor {name:?} is stored in an external data file, which is not supported")
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()
        .with_context(|| format!("ONNX tensor {name:?}: negative dimension in {:?}", t.dims))?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(4).is_some())
        .with_context(|| format!("ONNX tensor {name:?}: dims {dims:?} are too large"))?;
    let data = match &t.raw_data {
        Some(raw) => {
            if raw.len() != count * 4 {
                bail!(
                    "ONNX tensor {name:?}: {} bytes of raw data, expected {} for f32 dims {dims:?}",
                    raw.len(),
                    count * 4
                )
            }
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
        None => {
            if t.float_data.len() != count {
                bail!(
                    "ONNX tensor {name:?}: {} values for dims {dims:?}",
                    t.float_data.len()
                )
            }
            t.float_data
        }
    };
    Ok(Some(OnnxTensor { dims, data }))
}

/// Float initializers and nodes of the model's graph.
fn parse_graph(model: &[u8]) -> Result<(HashMap<String, OnnxTensor>, Vec<NodeProto>)> {
    let model = ModelProto::decode(model).context("not a readable ONNX model")?;
    let graph = model.graph.context("not an ONNX model: no graph")?;
    let mut inits = HashMap::new();
    for t in graph.initializer {
        let name = t.name().to_string();
        if let Some(t) = float_tensor(t)? {
            inits.insert(name, t);
        }
    }
    Ok((inits, graph.node))
}

/// The BERT weights of an ONNX export, under transformers' names (no `bert.` prefix), with
/// Linear weights transposed back to (out x in).
pub fn bert_weights(model: &[u8]) -> Result<HashMap<String, OnnxTensor>> {
    let (inits, nodes) = parse_graph(model)?;
    let hf_name = |n: &str| -> Option<String> {
        let start = n
            .find("embeddings.")
            .or_else(|| n.find("encoder.layer."))
            .or_else(|| n.find("pooler."))?;
        Some(n[start..].to_string())
    };
    let mut out = HashMap::new();
    for (name, t) in &inits {
        if let Some(hf) = hf_name(name) {
            out.insert(hf, t.clone());
        }
    }
    let producer: HashMap<&str, &NodeProto> = nodes
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    for add in nodes
        .iter()
        .filter(|n| n.op_type() == "Add" && n.input.len() == 2)
    {
        let (bias, other) = match (hf_name(&add.input[0]), hf_name(&add.input[1])) {
            (Some(b), None) if b.ends_with(".bias") => (b, &add.input[1]),
            (None, Some(b)) if b.ends_with(".bias") => (b, &add.input[0]),
            _ => continue,
        };
        let Some(mm) = producer
            .get(other.as_str())
            .filter(|n| n.op_type() == "MatMul")
        else {
            continue;
        };
        let Some(w) = mm.input.iter().find_map(|i| inits.get(i)) else {
            continue;
        };
        if w.dims.len() != 2 {
            bail!("MatMul weight for {bias} has dims {:?}", w.dims)
        }
        let (rows, cols) = (w.dims[0], w.dims[1]);
        let mut data = vec![0f32; w.data.len()];
        for i in 0..rows {
            for j in 0..cols {
                data[j * rows + i] = w.data[i * cols + j];
            }
        }
        let name = format!("{}.weight", bias.trim_end_matches(".bias"));
        out.insert(
            name,
            OnnxTensor {
                dims: vec![cols, rows],
                data,
            },
        );
    }
    if !out.contains_key("embeddings.word_embeddings.weight") {
        bail!("no BERT embeddings found in the ONNX graph (is this a BERT export?)")
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::proto::onnx::GraphProto;
    use super::*;

    fn tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
        TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(data.iter().flat_map(|f| f.to_le_bytes()).collect()),
            ..Default::default()
        }
    }
    fn node(op: &str, ins: &[&str], outs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }
    fn model(initializer: Vec<TensorProto>, node: Vec<NodeProto>) -> Vec<u8> {
        ModelProto {
            graph: Some(GraphProto {
                initializer,
                node,
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }
    const EMB: &str = "0.auto_model.embeddings.word_embeddings.weight";

    #[test]
    fn matmul_weights_are_found_through_their_bias_and_transposed() -> Result<()> {
        let bias = "0.auto_model.encoder.layer.0.attention.self.query.bias";
        let m = model(
            vec![
                tensor(EMB, &[2, 2], &[1., 2., 3., 4.]),
                tensor(bias, &[3], &[0.; 3]),
                // (in=2, out=3) as the export stores it.
                tensor("onnx::MatMul_7", &[2, 3], &[1., 2., 3., 4., 5., 6.]),
            ],
            vec![
                node("MatMul", &["x", "onnx::MatMul_7"], &["mm"]),
                node("Add", &[bias, "mm"], &["y"]),
            ],
        );
        let w = bert_weights(&m)?;
        let q = &w["encoder.layer.0.attention.self.query.weight"];
        assert_eq!(q.dims, vec![3, 2]);
        assert_eq!(q.data, vec![1., 4., 2., 5., 3., 6.]);
        assert!(w.contains_key("embeddings.word_embeddings.weight"));
        Ok(())
    }

    #[test]
    fn float_data_and_non_float_tensors() -> Result<()> {
        let mut emb = tensor(EMB, &[3], &[]);
        emb.raw_data = None;
        emb.float_data = vec![1., 2., 3.];
        let mut shape = tensor("a.embeddings.position_ids", &[2], &[]);
        shape.data_type = Some(DataType::Int64 as i32);
        shape.int64_data = vec![0, 1];
        let w = bert_weights(&model(vec![emb, shape], vec![]))?;
        assert_eq!(
            w["embeddings.word_embeddings.weight"].data,
            vec![1., 2., 3.]
        );
        assert!(!w.contains_key("embeddings.position_ids"));
        Ok(())
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let m = model(vec![tensor(EMB, &[2], &[1., 2.])], vec![]);
        for cut in [1, 5, m.len() / 2, m.len() - 1] {
            assert!(bert_weights(&m[..cut]).is_err());
        }
        let err = bert_weights(&[]).unwrap_err().to_string();
        assert!(err.contains("no graph"), "{err}");
    }

    #[test]
    fn data_that_does_not_fit_the_dims_is_an_error() {
        let err =
            |t: TensorProto| format!("{:#}", bert_weights(&model(vec![t], vec![])).unwrap_err());
        let e = err(tensor(EMB, &[3], &[1., 2.]));
        assert!(e.contains("8 bytes of raw data, expected 12"), "{e}");
        let mut odd = tensor(EMB, &[1], &[1.]);
        odd.raw_data.as_mut().unwrap().push(0);
        let e = err(odd);
        assert!(e.contains("5 bytes of raw data"), "{e}");
        let e = err(tensor(EMB, &[2, -1], &[1., 2.]));
        assert!(e.contains("negative dimension"), "{e}");
        let e = err(tensor(EMB, &[1 << 40, 1 << 40], &[1.]));
        assert!(e.contains("too large"), "{e}");
        let mut external = tensor(EMB, &[1], &[]);
        external.raw_data = None;
        external.data_location = Some(DataLocation::External as i32);
        let e = err(external);
        assert!(e.contains("external data"), "{e}");
    }
}
