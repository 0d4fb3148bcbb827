//! The course chapter "Understanding language models", section by section, in Rust.
//!
//!     cargo run --release --example course            # the course's settings (MiniLM-L6, 5 epochs)
//!     cargo run --release --example course -- --quick # a 2-minute version (MiniLM-L3, 2,000 examples, 1 epoch)
//!
//! Sections: the pipeline function ((1) sentiment analysis, (2) zero-shot classification,
//! (3) translation, (4) summarization, (5) text generation — the last three by prompting small
//! GGUF LLMs, as no seq2seq checkpoint can be had here), the language-modelling
//! procedure (tokenize, embed), then the whole fine-tuning part. The sentiment default is made
//! by lmkit: `lmkit fetch lmkit/sentiment-sst2` once (about 7 min on 2 cores); without it that cell says so
//! and the walk goes on.

use lmkit::pipelines::prompted::PromptedPipeline;
use lmkit::prelude::*;
use lmkit::train::{evaluate, fit, TrainConfig};

fn main() -> anyhow::Result<()> {
    lmkit::models::llm::prefer_f32_weights();
    let quick = std::env::args().any(|a| a == "--quick");
    let ckpt = if quick {
        "sentence-transformers/paraphrase-MiniLM-L3-v2"
    } else {
        "sentence-transformers/all-MiniLM-L6-v2"
    };

    // ---- Transformer pipelines: classifier = pipeline("sentiment-analysis"); classifier(text) --
    let text = [
        "I've been waiting for a HuggingFace course my whole life.",
        "I hate this so much!",
        "I have a dream.",
        "She was so happy.",
    ];
    match pipeline("sentiment-analysis", None) {
        Ok(classifier) => {
            for o in classifier.run(&text, &PipelineOptions::default())? {
                println!("{}", serde_json::to_string(&o)?);
            }
        }
        Err(e) => println!("(1) sentiment-analysis skipped: {e:#}"),
    }
    // (2) Zero-shot classification: labels the model never saw, English and Korean.
    let zero_shot = pipeline("zero-shot-classification", None)?;
    let mut opts = PipelineOptions {
        zero_shot: ZeroShotOptions::new(["education", "politics", "business"]),
        ..Default::default()
    };
    let o = zero_shot.run(&["This is a course about the Transformers library"], &opts)?;
    println!("{}", serde_json::to_string(&o[0])?);
    opts.zero_shot = ZeroShotOptions::new(["교육", "정치", "경제"]);
    let o = zero_shot.run(
        &["이 강의는 트랜스포머 라이브러리에 관한 수업입니다"],
        &opts,
    )?;
    println!("{}\n", serde_json::to_string(&o[0])?);

    // (3) Translation, (4) summarization (English and Korean), (5) text generation.
    let mut gemma = PromptedPipeline::new("google/gemma-3-270m")?;
    println!("{}", gemma.translate("I am a student.", "en", "ko")?.output);
    println!(
        "{}",
        gemma.translate("나는 학생입니다.", "ko", "en")?.output
    );
    let ko_doc = "서울시는 내년부터 시내버스 요금을 200원 올리기로 했다. 시는 연료비와 인건비가 \
                  크게 늘어 요금 인상이 불가피하다고 설명했다.";
    println!("{}", gemma.summarize(ko_doc)?.output);
    let mut smol = PromptedPipeline::new("HuggingFaceTB/SmolLM2-135M-Instruct")?;
    let en_doc = "The city council voted on Tuesday to build a new public library in the town \
                  centre. It will open in 2027 with a children's section and free computer rooms.";
    println!("{}", smol.summarize(en_doc)?.output);
    let answer = smol.llm.call(
        "What is the capital of France?",
        true,
        &lmkit::generation::sampling::GenerationConfig::default(),
        |_| {},
    )?;
    println!("{}\n", answer.generated_text);

    // ---- Language modelling procedure: tokenize, then embed ---------------------------------
    let tokenizer = AutoTokenizer::from_pretrained(ckpt)?;
    let enc = tokenizer.encode_batch(
        &["I have a dream.", "She was so happy."],
        EncodeOptions::default(),
    )?;
    println!(
        "tokens: {:?}\ninput_ids: {:?}\nattention_mask: {:?}",
        enc.tokens[0], enc.input_ids, enc.attention_mask
    );
    let st = SentenceTransformer::from_pretrained(ckpt, &LoadOptions::default())?;
    let v = st.encode(&[
        "I've been waiting for a HuggingFace course my whole life.",
        "I hate this so much!",
    ])?;
    println!(
        "embedding dims {}, cosine {:.3}\n",
        v[0].len(),
        cosine_similarity(&v[0], &v[1])
    );

    // ---- 1. Set-up: emotions = load_dataset("emotion"); classes -----------------------------
    let emotions = load_dataset("emotion")?;
    println!("{emotions}");
    let classes = emotions["train"].class_label("label")?.names.clone();
    println!("classes: {classes:?}\n");

    // ---- 2. Explore: data frame with label names, value_counts, plots ------------------------
    let train = &emotions["train"];
    println!("{}", train.head(5));
    for c in lmkit::data::eda::value_counts(train, "label")? {
        println!("{:<10} {}", c.label, c.count);
    }
    for f in lmkit::data::eda::write_plots(train, "text", "label", "runs/course/plots".as_ref())? {
        println!("plot: {}", f.display());
    }

    // ---- 3. Prepare: tokenizer, model_input_names, dataset.map(tokenize, batched=True) --------
    println!("model_input_names: {:?}", tokenizer.model_input_names);
    let opts = EncodeOptions {
        padding: Padding::None,
        ..Default::default()
    };
    let mut train_ds = train.clone();
    if quick {
        train_ds = train_ds
            .shuffle(42)?
            .select(&(0..2000).collect::<Vec<_>>())?;
    }
    let em_train = train_ds.tokenize(&tokenizer, "text", opts, None)?;
    let em_val = emotions["validation"].tokenize(&tokenizer, "text", opts, None)?;
    let em_test = emotions["test"].tokenize(&tokenizer, "text", opts, None)?;
    for (k, v) in em_train.row(0)? {
        println!("{k} : {v}");
    }

    // ---- 4. Fine-tune: from_pretrained(num_labels=6), Adam(5e-5), fit(5 epochs, val) ---------
    let dir = lmkit::hub::resolve(ckpt)?;
    let model = AutoModelForSequenceClassification::load(
        &dir,
        Some(classes.clone()),
        &LoadOptions::training(42),
    )?;
    let cfg = TrainConfig {
        epochs: if quick { 1 } else { 5 },
        ..Default::default()
    };
    fit(
        &model,
        &em_train,
        Some(&em_val),
        &cfg,
        "runs/course".as_ref(),
        false,
        tokenizer.pad_token_id,
    )?;

    // ---- predict, argmax, confusion_matrix, classification_report, plot ----------------------
    let (pred, report) = evaluate(&model, &em_test, 128, "label", tokenizer.pad_token_id)?;
    println!("{}\n{report}", report.confusion_table());
    lmkit::finetune::write_eval_outputs(
        "runs/course".as_ref(),
        &report,
        &pred.predicted,
        &emotions["test"],
        "text",
    )?;
    model.save_pretrained("runs/course/model".as_ref())?;
    println!(
        "saved runs/course/model; confusion matrix plot: runs/course/plots/confusion_matrix.png"
    );
    Ok(())
}
