//! Reads the weights out of an fp32 ONNX export of a BERT model.
//!
//! Hand-written because only a sliver of ONNX is needed (graph nodes' inputs/outputs/op types
//! and float initializers) and the ONNX crates pull in protoc at build time, which a clean
//! machine lacks. This is a ~150-line protobuf wire-format reader, nothing more.
//!
//! The export names most initializers after the PyTorch module (`...auto_model.encoder.layer.0
//! .attention.self.query.bias`), but Linear weights are unnamed `onnx::MatMul_*` tensors stored
//! transposed (in x out). Each is identified by following its MatMul to the Add whose other
//! input is the named bias, and is transposed back to PyTorch's (out x in).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};

/// A float tensor from the graph.
#[derive(Clone, Debug)]
pub struct OnnxTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Debug, Default)]
struct Node {
    inputs: Vec<String>,
    outputs: Vec<String>,
    op_type: String,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .context("truncated protobuf varint")?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("malformed protobuf varint")
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()? as usize;
        let end = self
            .pos
            .checked_add(n)
            .context("protobuf length overflow")?;
        let s = self
            .buf
            .get(self.pos..end)
            .context("truncated protobuf field")?;
        self.pos = end;
        Ok(s)
    }
    /// Next (field number, wire type).
    fn key(&mut self) -> Result<(u64, u8)> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }
    fn skip(&mut self, wire: u8) -> Result<()> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => self.pos += 8,
            2 => {
                self.bytes()?;
            }
            5 => self.pos += 4,
            w => bail!("unsupported protobuf wire type {w}"),
        }
        if self.pos > self.buf.len() {
            bail!("truncated protobuf field")
        }
        Ok(())
    }
}

fn string(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).context("non-UTF-8 name in ONNX file")
}

fn parse_node(b: &[u8]) -> Result<Node> {
    let mut r = Reader::new(b);
    let mut n = Node::default();
    while !r.done() {
        match r.key()? {
            (1, 2) => n.inputs.push(string(r.bytes()?)?),
            (2, 2) => n.outputs.push(string(r.bytes()?)?),
            (4, 2) => n.op_type = string(r.bytes()?)?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(n)
}

/// TensorProto: dims (1), data_type (2), float_data (4), name (8), raw_data (9).
fn parse_tensor(b: &[u8]) -> Result<(String, Option<OnnxTensor>)> {
    let mut r = Reader::new(b);
    let (mut dims, mut dtype, mut name) = (vec![], 0u64, String::new());
    let (mut raw, mut floats): (Option<&[u8]>, Vec<f32>) = (None, vec![]);
    while !r.done() {
        match r.key()? {
            (1, 0) => dims.push(r.varint()? as usize),
            (1, 2) => {
                let mut p = Reader::new(r.bytes()?);
                while !p.done() {
                    dims.push(p.varint()? as usize);
                }
            }
            (2, 0) => dtype = r.varint()?,
            (4, 2) => {
                let b = r.bytes()?;
                floats.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            (8, 2) => name = string(r.bytes()?)?,
            (9, 2) => raw = Some(r.bytes()?),
            (_, w) => r.skip(w)?,
        }
    }
    if dtype != 1 {
        return Ok((name, None)); // not FLOAT: shapes and indices, not weights
    }
    let data = match raw {
        Some(b) => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        None => floats,
    };
    let expected: usize = dims.iter().product();
    if data.len() != expected {
        bail!(
            "ONNX tensor {name:?}: {} values for dims {dims:?}",
            data.len()
        )
    }
    Ok((name, Some(OnnxTensor { dims, data })))
}

/// Float initializers and nodes of the model's graph.
fn parse_graph(model: &[u8]) -> Result<(HashMap<String, OnnxTensor>, Vec<Node>)> {
    let mut r = Reader::new(model);
    let mut graph = None;
    while !r.done() {
        match r.key()? {
            (7, 2) => graph = Some(r.bytes()?),
            (_, w) => r.skip(w)?,
        }
    }
    let graph = graph.context("not an ONNX model: no graph")?;
    let mut r = Reader::new(graph);
    let (mut inits, mut nodes) = (HashMap::new(), vec![]);
    while !r.done() {
        match r.key()? {
            (1, 2) => nodes.push(parse_node(r.bytes()?)?),
            (5, 2) => {
                if let (name, Some(t)) = parse_tensor(r.bytes()?)? {
                    inits.insert(name, t);
                }
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((inits, nodes))
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
    let producer: HashMap<&str, &Node> = nodes
        .iter()
        .flat_map(|n| n.outputs.iter().map(move |o| (o.as_str(), n)))
        .collect();
    for add in nodes
        .iter()
        .filter(|n| n.op_type == "Add" && n.inputs.len() == 2)
    {
        let (bias, other) = match (hf_name(&add.inputs[0]), hf_name(&add.inputs[1])) {
            (Some(b), None) if b.ends_with(".bias") => (b, &add.inputs[1]),
            (None, Some(b)) if b.ends_with(".bias") => (b, &add.inputs[0]),
            _ => continue,
        };
        let Some(mm) = producer
            .get(other.as_str())
            .filter(|n| n.op_type == "MatMul")
        else {
            continue;
        };
        let Some(w) = mm.inputs.iter().find_map(|i| inits.get(i)) else {
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
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
    fn field(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    fn tensor(name: &str, dims: &[u64], data: &[f32]) -> Vec<u8> {
        let mut t = vec![];
        for d in dims {
            varint(1 << 3, &mut t);
            varint(*d, &mut t);
        }
        varint(2 << 3, &mut t);
        varint(1, &mut t);
        field(8, name.as_bytes(), &mut t);
        let raw: Vec<u8> = data.iter().flat_map(|f| f.to_le_bytes()).collect();
        field(9, &raw, &mut t);
        t
    }
    fn node(op: &str, ins: &[&str], outs: &[&str]) -> Vec<u8> {
        let mut n = vec![];
        for i in ins {
            field(1, i.as_bytes(), &mut n);
        }
        for o in outs {
            field(2, o.as_bytes(), &mut n);
        }
        field(4, op.as_bytes(), &mut n);
        n
    }

    #[test]
    fn matmul_weights_are_found_through_their_bias_and_transposed() -> Result<()> {
        let mut g = vec![];
        field(
            5,
            &tensor(
                "0.auto_model.embeddings.word_embeddings.weight",
                &[2, 2],
                &[1., 2., 3., 4.],
            ),
            &mut g,
        );
        field(
            5,
            &tensor(
                "0.auto_model.encoder.layer.0.attention.self.query.bias",
                &[3],
                &[0.; 3],
            ),
            &mut g,
        );
        // (in=2, out=3) as the export stores it.
        field(
            5,
            &tensor("onnx::MatMul_7", &[2, 3], &[1., 2., 3., 4., 5., 6.]),
            &mut g,
        );
        field(
            1,
            &node("MatMul", &["x", "onnx::MatMul_7"], &["mm"]),
            &mut g,
        );
        field(
            1,
            &node(
                "Add",
                &[
                    "0.auto_model.encoder.layer.0.attention.self.query.bias",
                    "mm",
                ],
                &["y"],
            ),
            &mut g,
        );
        let mut m = vec![];
        field(7, &g, &mut m);
        let w = bert_weights(&m)?;
        let q = &w["encoder.layer.0.attention.self.query.weight"];
        assert_eq!(q.dims, vec![3, 2]);
        assert_eq!(q.data, vec![1., 4., 2., 5., 3., 6.]);
        assert!(w.contains_key("embeddings.word_embeddings.weight"));
        Ok(())
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut g = vec![];
        field(
            5,
            &tensor("a.embeddings.word_embeddings.weight", &[2], &[1., 2.]),
            &mut g,
        );
        let mut m = vec![];
        field(7, &g, &mut m);
        for cut in [1, 5, m.len() / 2, m.len() - 1] {
            assert!(bert_weights(&m[..cut]).is_err());
        }
    }
}
