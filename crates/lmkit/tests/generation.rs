//! Text generation with GGUF decoders. One test function: the f32-weights switch must be set
//! before any other thread runs (see `models::llm::prefer_f32_weights`).
//!
//! Reference: tests/fixtures/make_smollm2_fixture.py (transformers on the same GGUF file,
//! dequantised to f32). Greedy decoding is compared token for token: both sides compute in
//! f32, and the fixture's prompts have top-2 logit gaps far above the ~1e-4 relative error
//! of a different summation order, so the argmax cannot flip.

mod common;

use lmkit::generation::sampling::{generate, GenerationConfig};
use lmkit::models::llm::CausalLM;
use lmkit::pipelines::text_generation::TextGenerationPipeline;

#[test]
fn gguf_decoders_generate_like_transformers() {
    lmkit::models::llm::prefer_f32_weights();
    let f = common::fixture("smollm2_greedy.json");
    let mut p = TextGenerationPipeline::new("HuggingFaceTB/SmolLM2-135M-Instruct").unwrap();
    let greedy = GenerationConfig {
        max_new_tokens: f["max_new_tokens"].as_u64().unwrap() as usize,
        ..Default::default()
    };
    for c in f["cases"].as_array().unwrap() {
        let chat = c["kind"] == "chat";
        let text = c["text"].as_str().unwrap();
        let ids = p.prompt_ids(text, chat).unwrap();
        assert_eq!(
            ids,
            common::u32s(&c["prompt_ids"]),
            "prompt ids of {text:?}"
        );
        let mut streamed = String::new();
        let out = p
            .call(text, chat, &greedy, |s| streamed.push_str(s))
            .unwrap();
        let want = c["greedy_text"].as_str().unwrap();
        assert_eq!(out.generated_text, want, "{text:?}");
        assert_eq!(
            streamed, out.generated_text,
            "streamed pieces add up to the text"
        );
    }
    // The course check: the greedy chat answer mentions Paris.
    let a = p
        .call("What is the capital of France?", true, &greedy, |_| {})
        .unwrap();
    assert!(a.generated_text.contains("Paris"), "{}", a.generated_text);
    assert_eq!(a.stats.finish_reason, "eos");

    // Seeded sampling is reproducible.
    let sample = GenerationConfig {
        max_new_tokens: 16,
        temperature: 0.9,
        top_k: Some(40),
        top_p: Some(0.95),
        seed: 7,
        ..Default::default()
    };
    let s1 = p.call("Once upon a time", false, &sample, |_| {}).unwrap();
    let s2 = p.call("Once upon a time", false, &sample, |_| {}).unwrap();
    assert_eq!(s1.generated_text, s2.generated_text);
    assert_eq!(s1.stats.new_tokens, 16);

    // Stop strings cut the text.
    let stop = GenerationConfig {
        stop: vec![",".into()],
        ..greedy.clone()
    };
    let s = p.call("1, 2, 3, 4,", false, &stop, |_| {}).unwrap();
    assert_eq!(s.generated_text, " 5");
    assert_eq!(s.stats.finish_reason, "stop_string");

    // Bad input.
    let e = p
        .call("  ", false, &greedy, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("prompt is empty"), "{e}");
    let zero = GenerationConfig {
        max_new_tokens: 0,
        ..Default::default()
    };
    let e = p.call("Hi", false, &zero, |_| {}).unwrap_err().to_string();
    assert!(e.contains("max_new_tokens is 0"), "{e}");
    // A prompt longer than the context keeps its end.
    p.model.context_length = 12;
    let long = "one two three four five six seven eight nine ten eleven twelve thirteen";
    let g = p
        .call(
            long,
            false,
            &GenerationConfig {
                max_new_tokens: 4,
                ..Default::default()
            },
            |_| {},
        )
        .unwrap();
    assert_eq!(g.stats.prompt_tokens, 8);
    p.model.context_length = 8192;

    // A GGUF of another architecture is refused by name.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("mamba.gguf");
    let mut w = std::fs::File::create(&bad).unwrap();
    let arch = candle_core::quantized::gguf_file::Value::String("mamba".into());
    candle_core::quantized::gguf_file::write(&mut w, &[("general.architecture", &arch)], &[])
        .unwrap();
    drop(w);
    let e = CausalLM::from_path(&bad).err().unwrap().to_string();
    assert!(
        e.contains("\"mamba\"") && e.contains("llama, gemma3"),
        "{e}"
    );

    // Gemma 3 (base, multilingual): continues Korean in Korean.
    let mut g = CausalLM::from_path(&lmkit::hub::resolve("google/gemma-3-270m").unwrap()).unwrap();
    let ids = g
        .tokenizer
        .encode("대한민국의 수도는 서울이다. 서울은", true)
        .unwrap();
    assert_eq!(ids[0], g.tokenizer.bos.unwrap());
    let out = generate(
        &mut g,
        &ids,
        &GenerationConfig {
            max_new_tokens: 12,
            ..Default::default()
        },
        |_| {},
    )
    .unwrap();
    let hangul = out
        .text
        .chars()
        .filter(|c| ('\u{AC00}'..='\u{D7A3}').contains(c))
        .count();
    assert!(hangul >= 3, "not Korean: {:?}", out.text);

    // Translation and summarization by prompting (Gemma few-shot, SmolLM2 chat).
    use lmkit::pipelines::prompted::PromptedPipeline;
    let korean = |s: &str| {
        s.chars()
            .filter(|c| ('\u{AC00}'..='\u{D7A3}').contains(c))
            .count()
    };
    let mut tr = PromptedPipeline::new("google/gemma-3-270m").unwrap();
    let o = tr.translate("나는 학생입니다.", "ko", "en").unwrap();
    assert!(o.output.to_lowercase().contains("student"), "{o:?}");
    // en->ko: the 270M base model's wording is weak ("I am a student." comes out as
    // "나는 10th grade teacher."), so only the language is checked.
    let o = tr
        .translate("The weather is very cold this morning.", "en", "ko")
        .unwrap();
    assert!(korean(&o.output) >= 2, "{o:?}");
    let e = tr.translate("x", "en", "xx").unwrap_err().to_string();
    assert!(e.contains("unknown language \"xx\""), "{e}");
    let e = tr.translate("x", "en", "en").unwrap_err().to_string();
    assert!(e.contains("both"), "{e}");
    assert!(tr.translate(" ", "en", "ko").is_err());
    let o = tr.summarize("서울시는 내년부터 시내버스 요금을 200원 올리기로 했다. 시는 연료비와 인건비가 크게 늘었다고 설명했다.").unwrap();
    assert!(!o.output.is_empty() && o.method == "TL;DR prompt", "{o:?}");
    let mut su = PromptedPipeline::new("HuggingFaceTB/SmolLM2-135M-Instruct").unwrap();
    su.max_new_tokens = 48;
    let doc =
        "The city council voted on Tuesday to build a new public library in the town centre. \
               The library will open in 2027 and will have a children's section, a cafe and free \
               computer rooms. Council members said the project would cost 12 million pounds.";
    let o = su.summarize(doc).unwrap();
    assert!(o.output.to_lowercase().contains("library"), "{o:?}");
}
