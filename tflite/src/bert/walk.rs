//! The walk from the token-id input to the pooled output (see [`super`] for the graph it follows).

use super::norm::LayerNormMatch;
use super::{BertGraph, InputRoles, LayerRefs};
use crate::graph::{attention_roles, find_embedding, unrecognised, AttentionRoles, Graph};
use crate::model::{op, OpOptions, TfliteModel};
use crate::TfliteError;

/// Walks the graph of `model` and recognises a BERT encoder (see the module docs).
pub fn recognise(model: &TfliteModel) -> Result<BertGraph, TfliteError> {
    let g = Graph::new(model);
    let lookup = find_embedding(&g)?;
    let (word, mut x) = (lookup.table, lookup.rows);
    let h = model.tensors[word].shape[1];

    // Additions to the token embeddings, up to the LayerNorm.
    let (mut position, mut token_type) = (None, Vec::new());
    let mut segments = None;
    while g.users(x, op::MEAN).is_empty() {
        let add = g.one_user(x, op::ADD, "embeddings")?;
        let other = if add.input(0) == Some(x) {
            add.input(1)
        } else {
            add.input(0)
        };
        let other = other.ok_or_else(|| unrecognised(format!("{} has one input", add.label())))?;
        let shape_of = |t: usize| model.tensors[t].shape.clone();
        if let Some((table, input)) = g.segment_lookup(other, h) {
            // The segment ids' look-up in the token-type table (a masked, fixed-length export).
            if segments.replace(input).is_some() || input == lookup.input {
                return Err(unrecognised(format!(
                    "embeddings: {} adds a second look-up by a model input",
                    add.label()
                )));
            }
            token_type.push(table);
        } else if let Some(c) = g.constant(other) {
            match shape_of(c).as_slice() {
                [d] | [1, d] if *d == h => token_type.push(c),
                // litert-torch folds the token-type row, broadcast over the fixed sequence
                // length, into a [1, n, h] constant beside the [1, n, h] position rows.
                [_, d] | [1, _, d] if *d == h && token_type.is_empty() && g.rows_identical(c, h) => token_type.push(c),
                [p, d] | [1, p, d] if *d == h && position.is_none() => position = Some(c),
                s => {
                    return Err(unrecognised(format!(
                        "embeddings: constant {} of shape {s:?} added to the token embeddings",
                        g.label(c)
                    )))
                }
            }
        } else {
            let slice = g.producer[other]
                .map(|i| g.op(i))
                .filter(|o| matches!(o.code, op::STRIDED_SLICE | op::SLICE));
            let table = slice.and_then(|o| o.input(0)).and_then(|t| g.constant(t));
            match table {
                Some(t)
                    if position.is_none() && model.tensors[t].shape.len() == 2 && model.tensors[t].shape[1] == h =>
                {
                    position = Some(t)
                }
                _ => {
                    return Err(unrecognised(format!(
                        "embeddings: {} adds {}, which is neither a constant nor a slice of a position table",
                        add.label(),
                        g.label(other)
                    )))
                }
            }
        }
        x = g.out(add)?;
    }
    let ln = g.layer_norm(x, "embeddings")?;
    let (eps, embeddings_norm) = (ln.eps, ln.norm);
    let mut stream = ln;
    let mut folded: Option<bool> = None;
    let mut layers = Vec::new();
    let mut heads = None;
    let mut gelu_tanh = None;
    // The attention-mask input, and how many layers add its score bias.
    let (mut mask, mut masked_layers) = (None, 0);
    loop {
        let i = layers.len();
        let ctx = format!("layer {i}");
        let on_normalized = g.linears_reading(stream.normalized)?;
        let on_output = g.linears_reading(stream.output)?;
        let (this_folded, qkv) = match (on_normalized.is_empty(), on_output.is_empty()) {
            (true, true) => break,
            (false, true) => (true, on_normalized),
            (true, false) => (false, on_output),
            (false, false) => {
                return Err(unrecognised(format!(
                    "{ctx}: linear layers read both the normalised values and the LayerNorm output"
                )))
            }
        };
        if *folded.get_or_insert(this_folded) != this_folded {
            return Err(unrecognised(format!(
                "{ctx}: LayerNorm weights are folded into some linear layers but not others"
            )));
        }
        let norm_out = |m: &LayerNormMatch| if this_folded { m.normalized } else { m.output };
        if qkv.len() != 3 {
            return Err(unrecognised(format!(
                "{ctx}: expected 3 linear layers (query, key, value) after the LayerNorm, found {}",
                qkv.len()
            )));
        }
        // Where each projection enters an attention product: (product operator, operand slot).
        let mut entries = Vec::new();
        for (o, mut lin) in qkv {
            let result = g.linear_result(o, &mut lin)?;
            let shaped = g.through_layout(result);
            if heads.is_none() {
                // The RESHAPE into heads: [..., heads, head_dim] with heads x head_dim = h.
                if let [.., a, b] = model.tensors[g.through_layout_first_reshape(result)].shape[..] {
                    if a * b == h && a > 1 {
                        heads = Some(a);
                    }
                }
            }
            let bmm = g
                .users(shaped, op::BATCH_MATMUL)
                .into_iter()
                .next()
                .ok_or_else(|| unrecognised(format!("{ctx}: {} does not reach a BATCH_MATMUL", o.label())))?;
            let slot = if bmm.input(0) == Some(shaped) { 0 } else { 1 };
            entries.push((lin, bmm.index, slot));
        }
        let AttentionRoles {
            query,
            key,
            value,
            scores_op,
            context_op,
        } = attention_roles(&entries, &ctx)?;
        // scores -> MUL / DIV by a constant -> SOFTMAX -> context product. litert-torch folds
        // the scale of an SDPA attention into the projections instead: no MUL / DIV, scale 1.
        let scores = g.out(g.op(scores_op))?;
        let scale_op = g.consumers[scores]
            .first()
            .map(|&i| g.op(i))
            .filter(|o| matches!(o.code, op::MUL | op::DIV));
        let (scale, mut scaled) = match scale_op {
            Some(scale_op) => {
                let c = scale_op.input(1).and_then(|t| g.scalar(t)).ok_or_else(|| {
                    unrecognised(format!(
                        "{ctx}: {} does not scale by a scalar constant",
                        scale_op.label()
                    ))
                })?;
                let scale = if scale_op.code == op::DIV { 1.0 / c } else { c };
                (scale, g.out(scale_op)?)
            }
            None => (1.0, scores),
        };
        // litert-torch adds the attention mask, all zeros without padding; a masked export
        // adds (1 - mask) x -10000, or litert-torch's SELECT_V2(key mask, 0, f32::MIN), zero on
        // every real token (octet runs unpadded).
        if let [i] = g.consumers[scaled].as_slice() {
            let add = g.op(*i);
            if add.code == op::ADD {
                let bias = add.inputs.iter().flatten().copied().find(|&t| t != scaled);
                match bias.and_then(|b| g.padding_mask_bias(b).or_else(|| g.padding_mask_select(b))) {
                    Some(input) if *mask.get_or_insert(input) == input && input != lookup.input => masked_layers += 1,
                    Some(_) => {
                        return Err(unrecognised(format!(
                            "{ctx}: {} adds a padding mask read from another input than the other layers' (or from the token ids)",
                            add.label()
                        )))
                    }
                    None if bias.is_some_and(|m| g.is_zero_mask(m)) => {}
                    None => {
                        return Err(unrecognised(format!(
                            "{ctx}: {} adds a mask to the attention scores that is not all zeros and not a padding mask \
                             ((1 - mask) x a large negative constant, or SELECT_V2(mask of the keys, 0, a large negative \
                             constant)) (octet runs unpadded sequences without a mask)",
                            add.label()
                        )))
                    }
                }
                scaled = g.out(add)?;
            }
        }
        let softmax = g.one_user(scaled, op::SOFTMAX, &ctx)?;
        if g.op(context_op).input(0) != Some(g.through_layout(g.out(softmax)?)) {
            return Err(unrecognised(format!(
                "{ctx}: the value product does not read the softmax"
            )));
        }
        let context = g.through_layout(g.out(g.op(context_op))?);
        let mut output = g.linears_reading(context)?;
        if output.len() != 1 {
            return Err(unrecognised(format!(
                "{ctx}: expected one output projection reading the attention context {}, found {}",
                g.label(context),
                output.len()
            )));
        }
        let (o_op, mut output_ref) = output.remove(0);
        let o_out = g.linear_result(o_op, &mut output_ref)?;
        let after_attention = g.add_of(o_out, stream.output, &ctx)?;
        let ln1 = g.layer_norm(after_attention, &format!("{ctx} attention"))?;
        let mut up = g.linears_reading(norm_out(&ln1))?;
        if up.len() != 1 {
            return Err(unrecognised(format!(
                "{ctx}: expected one FFN up projection after the attention LayerNorm, found {}",
                up.len()
            )));
        }
        let (up_op, mut up_ref) = up.remove(0);
        let up_out = g.linear_result(up_op, &mut up_ref)?;
        let gelu = g.one_user(up_out, op::GELU, &format!("{ctx} FFN activation"))?;
        let tanh = matches!(gelu.options, OpOptions::Gelu { approximate: true });
        if *gelu_tanh.get_or_insert(tanh) != tanh {
            return Err(unrecognised(format!("{ctx}: GELU form differs between layers")));
        }
        let mut down = g.linears_reading(g.out(gelu)?)?;
        if down.len() != 1 {
            return Err(unrecognised(format!(
                "{ctx}: expected one FFN down projection after GELU, found {}",
                down.len()
            )));
        }
        let (down_op, mut down_ref) = down.remove(0);
        let down_out = g.linear_result(down_op, &mut down_ref)?;
        let after_ffn = g.add_of(down_out, ln1.output, &ctx)?;
        let ln2 = g.layer_norm(after_ffn, &format!("{ctx} FFN"))?;
        for e in [ln1.eps, ln2.eps] {
            if (e - eps).abs() > eps.abs() * 1e-3 {
                return Err(unrecognised(format!(
                    "{ctx}: LayerNorm epsilon {e} differs from the embeddings' {eps}"
                )));
            }
        }
        if (scale - 0.0).abs() < f32::MIN_POSITIVE {
            return Err(unrecognised(format!("{ctx}: attention scale is 0")));
        }
        layers.push((
            LayerRefs {
                query,
                key,
                value,
                output: output_ref,
                attention_norm: ln1.norm,
                up: up_ref,
                down: down_ref,
                ffn_norm: ln2.norm,
            },
            scale,
        ));
        stream = ln2;
    }
    if layers.is_empty() {
        return Err(unrecognised(
            "no FULLY_CONNECTED or BATCH_MATMUL layer reads the embeddings' LayerNorm",
        ));
    }
    let heads = heads.ok_or_else(|| {
        unrecognised("no RESHAPE into attention heads ([..., heads, head_dim]) after the query projection")
    })?;
    let head_dim = h / heads;
    let want = 1.0 / (head_dim as f32).sqrt();
    // Either every layer scales its scores by 1/sqrt(head_dim), or none does (the scale is in
    // the projections' weights, and the query weights are rescaled when planned).
    let unscaled = layers.iter().all(|(_, s)| *s == 1.0);
    if let Some((_, s)) = layers.iter().find(|(_, s)| !unscaled && (s - want).abs() > want * 1e-4) {
        return Err(unrecognised(format!(
            "attention scale {s}; octet's BERT uses 1/sqrt(head_dim {head_dim}) = {want}, or no scale in every layer"
        )));
    }
    let query_scale = if unscaled { 1.0 / want } else { 1.0 };
    if mask.is_some() && masked_layers != layers.len() {
        return Err(unrecognised(format!(
            "only {masked_layers} of {} layers add the padding mask to their attention scores: a padded input would \
             attend to padding in the others, which octet's unpadded run cannot reproduce",
            layers.len()
        )));
    }

    // Pooling after the last LayerNorm.
    let pooling = super::pooling::recognise(&g, stream.output, lookup.input, &mut mask)?;
    let inputs = InputRoles {
        ids: lookup.input,
        mask,
        segments,
    };
    if let Some(&other) = model
        .inputs
        .iter()
        .find(|&&i| i != inputs.ids && Some(i) != inputs.mask && Some(i) != inputs.segments)
    {
        return Err(unrecognised(format!(
            "input {} {} {:?} is neither the token ids ({}), an attention mask added to the scores and pooling, nor \
             segment ids looked up in the token-type table",
            g.label(other),
            model.tensors[other].dtype.as_str(),
            model.tensors[other].shape,
            g.label(inputs.ids)
        )));
    }
    Ok(BertGraph {
        inputs,
        word,
        position,
        token_type,
        embeddings_norm,
        layers: layers.into_iter().map(|(l, _)| l).collect(),
        heads,
        eps,
        gelu_tanh: gelu_tanh.unwrap_or(false),
        folded_norms: folded.unwrap_or(false),
        query_scale,
        asymmetric_inputs: model.operators.iter().any(|o| {
            matches!(
                o.options,
                OpOptions::FullyConnected {
                    asymmetric_quantize_inputs: true,
                    ..
                }
            )
        }),
        pooling,
    })
}
