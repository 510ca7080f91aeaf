//! End-to-end: model files edited, cut, corrupted or made up by hand. Every one either scores
//! exactly as LightGBM would or is refused with one line naming the file, never a crash, a hang
//! or a wrong score; LightGBM's own loader is only ever given text our parser wrote back.

mod common;

use std::path::Path;
use std::process::Command;

use common::{audience, audience_bin, bank_csv, make_fifo, workspace};

/// Trains the bank model once per test and returns its model.txt.
fn bundle(dir: &Path) -> String {
    audience(dir)
        .args(["train", "--out", "model", "-q", "--num-rounds", "30"])
        .assert()
        .success();
    std::fs::read_to_string(dir.join("model/model.txt")).unwrap()
}

/// The first 2,000 rows of the bank history.
fn candidates(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(bank_csv()).unwrap();
    let head: Vec<&str> = text.lines().take(2001).collect();
    let path = dir.join("candidates.csv");
    std::fs::write(&path, head.join("\n")).unwrap();
    path
}

/// Runs `score` on the candidates with the model at `model` and the given engine; the output
/// text, or the error (exit code, stderr) when it failed. Panics on a signal (a crash).
fn score(dir: &Path, model: &str, engine: &str) -> Result<String, (i32, String)> {
    let out = dir.join(format!("scores-{engine}.csv"));
    let output = Command::new(audience_bin())
        .current_dir(dir)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .args([
            "score", "-q", "--force", "--engine", engine, "--model", model,
        ])
        .arg("--data")
        .arg(candidates(dir))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    match output.status.code() {
        Some(0) => Ok(std::fs::read_to_string(&out).unwrap()),
        Some(code) => Err((code, String::from_utf8_lossy(&output.stderr).into_owned())),
        None => panic!(
            "killed by a signal (crash): {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Writes `text` as a bundle's model.txt (the manifest copied) and returns the bundle's name.
fn variant(dir: &Path, name: &str, text: &str) -> String {
    let target = dir.join(name);
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(
        dir.join("model/audience-model.json"),
        target.join("audience-model.json"),
    )
    .unwrap();
    std::fs::write(target.join("model.txt"), text).unwrap();
    name.to_string()
}

#[test]
fn edited_models_score_as_the_original_or_are_refused_cleanly() {
    let ws = workspace();
    let dir = ws.path();
    let original = bundle(dir);
    let expected = score(dir, "model", "native").unwrap();
    assert_eq!(score(dir, "model", "lightgbm").unwrap(), expected);
    assert_eq!(score(dir, "model", "walk").unwrap(), expected);

    // Harmless edits: every engine scores exactly as before.
    let sizes_line = original
        .lines()
        .find(|l| l.starts_with("tree_sizes="))
        .unwrap()
        .to_string();
    // The first tree's size made huge (LightGBM's loader trusted it and crashed).
    let huge_sizes = {
        let mut parts: Vec<&str> = sizes_line["tree_sizes=".len()..].split(' ').collect();
        parts[0] = "99999999999";
        format!("tree_sizes={}", parts.join(" "))
    };
    let harmless = [
        ("crlf", original.replace('\n', "\r\n")),
        ("huge_tree_size", original.replace(&sizes_line, &huge_sizes)),
        (
            "no_tree_sizes",
            original.replace(&format!("{sizes_line}\n"), ""),
        ),
    ];
    for (name, text) in harmless {
        let model = variant(dir, name, &text);
        for engine in ["native", "walk", "lightgbm"] {
            assert_eq!(
                score(dir, &model, engine).unwrap_or_else(|e| panic!("{name} {engine}: {e:?}")),
                expected,
                "{name} ({engine})"
            );
        }
    }

    // Broken ones: refused with one line naming the file, exit code 1.
    let tree_1_start = original.find("Tree=1\n").unwrap();
    let tree_2_start = original.find("Tree=2\n").unwrap();
    let first_cat = original
        .lines()
        .find(|l| l.starts_with("num_cat=") && l != &"num_cat=0")
        .unwrap()
        .to_string();
    let broken: Vec<(&str, String, &str)> = vec![
        (
            "num_cat_huge",
            original.replacen(&first_cat, "num_cat=1000000000", 1),
            "do not cut",
        ),
        (
            "boundary_huge",
            {
                let line = original
                    .lines()
                    .find(|l| l.starts_with("cat_boundaries="))
                    .unwrap();
                let mut values: Vec<&str> = line["cat_boundaries=".len()..].split(' ').collect();
                *values.last_mut().unwrap() = "1500000000";
                original.replacen(line, &format!("cat_boundaries={}", values.join(" ")), 1)
            },
            "do not cut",
        ),
        (
            "tree_removed",
            format!("{}{}", &original[..tree_1_start], &original[tree_2_start..]),
            "Tree=2 where Tree=1 was expected",
        ),
        (
            "cut_short",
            original[..original.find("end of trees").unwrap() - 200].to_string(),
            "",
        ),
        (
            "num_leaves_zero",
            original.replacen("num_leaves=", "num_leaves=0\nignored=", 1),
            "",
        ),
        (
            "max_feature_idx_huge",
            original.replacen(
                &original
                    .lines()
                    .find(|l| l.starts_with("max_feature_idx="))
                    .unwrap()
                    .to_string(),
                "max_feature_idx=18446744073709551615",
                1,
            ),
            "max_feature_idx",
        ),
        (
            "leaf_nan",
            {
                let line = original
                    .lines()
                    .find(|l| l.starts_with("leaf_value="))
                    .unwrap();
                original.replacen(line, &line.replacen(' ', " nan ", 1), 1)
            },
            "",
        ),
        (
            "not_a_model",
            "hello\n".repeat(10),
            "not a LightGBM text model",
        ),
    ];
    for (name, text, needle) in broken {
        let model = variant(dir, name, &text);
        for engine in ["native", "lightgbm"] {
            let (code, stderr) = score(dir, &model, engine)
                .err()
                .unwrap_or_else(|| panic!("{name} ({engine}) scored"));
            assert_eq!(code, 2, "{name} ({engine}): {stderr}");
            assert!(
                stderr.starts_with("error: ") && stderr.contains(&format!("{name}/model.txt")),
                "{name} ({engine}): {stderr}"
            );
            assert!(stderr.contains(needle), "{name} ({engine}): {stderr}");
            assert_eq!(
                stderr.trim_end().lines().count(),
                1,
                "{name}: one line: {stderr}"
            );
        }
    }

    // A category listed twice would be coded two ways: refused, in the manifest and in a bare
    // model's pandas_categorical line.
    let manifest_text = std::fs::read_to_string(dir.join("model/audience-model.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&manifest_text).unwrap();
    let listed = manifest["features"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find_map(|f| {
            f.get_mut("categories")
                .and_then(|c| c.as_array_mut())
                .filter(|c| c.len() > 1)
        })
        .unwrap();
    listed[1] = listed[0].clone();
    let repeated = listed[0].as_str().unwrap().to_string();
    let model = variant(dir, "repeated_manifest", &original);
    std::fs::write(
        dir.join("repeated_manifest/audience-model.json"),
        manifest.to_string(),
    )
    .unwrap();
    let last = original.trim_end().lines().last().unwrap();
    assert!(last.starts_with("pandas_categorical:[["), "{last}");
    let bare = dir.join("repeated_bare.txt");
    let first_list_end = last.find(']').unwrap();
    let first_list = &last["pandas_categorical:[[".len()..first_list_end];
    let first_value = first_list.split(", ").next().unwrap();
    std::fs::write(
        &bare,
        original.replacen(
            &format!("pandas_categorical:[[{first_value}"),
            &format!("pandas_categorical:[[{first_value}, {first_value}"),
            1,
        ),
    )
    .unwrap();
    for (model, file, value) in [
        (
            model.as_str(),
            "repeated_manifest/audience-model.json",
            repeated.clone(),
        ),
        (
            "repeated_bare.txt",
            "repeated_bare.txt",
            first_value.trim_matches('"').to_string(),
        ),
    ] {
        let (code, stderr) = score(dir, model, "native").unwrap_err();
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains(file)
                && stderr.contains(&format!("{value:?}"))
                && stderr.contains("twice"),
            "{stderr}"
        );
    }
}

#[test]
fn a_model_that_is_a_device_or_a_fifo_is_refused_without_reading_it() {
    let ws = workspace();
    let dir = ws.path();
    bundle(dir);
    candidates(dir);
    let zero = dir.join("zero");
    std::fs::create_dir(&zero).unwrap();
    std::fs::copy(
        dir.join("model/audience-model.json"),
        zero.join("audience-model.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero.join("model.txt")).unwrap();
    let fifo = dir.join("fifo.txt");
    make_fifo(&fifo);
    for model in ["zero", "fifo.txt"] {
        let (code, stderr) = score(dir, model, "native").unwrap_err();
        assert_eq!(code, 2);
        assert!(
            stderr.contains("is not a regular file"),
            "{model}: {stderr}"
        );
    }
}

/// A hand-made model: one tree per entry of `trees`, each a chain of `depth` numerical splits
/// on feature `age`.
fn chain_model(trees: usize, depth: usize) -> String {
    let mut text = String::from(
        "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=0\nobjective=binary sigmoid:1\nfeature_names=age\nfeature_infos=[18:95]\n\n",
    );
    for t in 0..trees {
        let internal = depth;
        let features = vec!["0"; internal].join(" ");
        let thresholds: Vec<String> = (0..internal).map(|i| format!("{}", 18 + i % 70)).collect();
        let decisions = vec!["2"; internal].join(" ");
        // Node i: left is leaf i, right is node i+1 (the last node's right is the last leaf).
        let left: Vec<String> = (0..internal).map(|i| (!(i as i64)).to_string()).collect();
        let right: Vec<String> = (0..internal)
            .map(|i| {
                if i + 1 < internal {
                    (i + 1).to_string()
                } else {
                    (!(internal as i64)).to_string()
                }
            })
            .collect();
        let leaves: Vec<String> = (0..=internal)
            .map(|i| format!("{}", (i % 7) as f64 * 0.01 - 0.03))
            .collect();
        text.push_str(&format!(
            "Tree={t}\nnum_leaves={}\nnum_cat=0\nsplit_feature={features}\nthreshold={}\ndecision_type={decisions}\nleft_child={}\nright_child={}\nleaf_value={}\nis_linear=0\nshrinkage=1\n\n\n",
            internal + 1,
            thresholds.join(" "),
            left.join(" "),
            right.join(" "),
            leaves.join(" ")
        ));
    }
    text.push_str("end of trees\n");
    text
}

#[test]
fn deep_or_huge_models_are_walked_instead_of_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..500).map(|i| format!("{}", 18 + i % 80)).collect();
    std::fs::write(
        dir.path().join("people.csv"),
        format!("age\n{}\n", rows.join("\n")),
    )
    .unwrap();
    for (name, text) in [
        ("chain.txt", chain_model(1, 2000)),
        ("many.txt", chain_model(20_000, 12)),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
        let mut outputs = Vec::new();
        for engine in ["native", "lightgbm"] {
            let run = audience(dir.path())
                .args([
                    "score",
                    "--model",
                    name,
                    "--data",
                    "people.csv",
                    "--engine",
                    engine,
                ])
                .args(["--out", &format!("{name}-{engine}.csv"), "-q"])
                .assert()
                .success();
            let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
            if engine == "native" {
                assert!(stderr.contains("walked, not compiled"), "{name}: {stderr}");
            }
            outputs.push(
                std::fs::read_to_string(dir.path().join(format!("{name}-{engine}.csv"))).unwrap(),
            );
        }
        assert_eq!(outputs[0], outputs[1], "{name}: same scores as LightGBM");
    }
}

#[test]
fn python_models_with_empty_pandas_categorical_read_integer_codes() {
    // Python lightgbm trained on a plain DataFrame with integer-coded categorical columns writes
    // `pandas_categorical:[]`; it scores those columns as the codes they are.
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, numpy as np, pandas as pd, lightgbm as lgb
rng = np.random.default_rng(3)
n = 4000
X = pd.DataFrame({"city": rng.integers(0, 6, n), "plan": rng.integers(0, 3, n), "age": rng.normal(40, 9, n)})
y = ((X.city % 2 == 0) & (X.age > 38) | (X.plan == 2)).astype(int) ^ (rng.random(n) < 0.1)
b = lgb.train({"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1}, lgb.Dataset(X, y, categorical_feature=["city", "plan"]), 20)
b.save_model(sys.argv[1] + "/model.txt")
X.to_csv(sys.argv[1] + "/rows.csv", index=False)
np.savetxt(sys.argv[1] + "/expected.txt", b.predict(X), fmt="%.17g")
"#;
    let out = common::python()
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = std::fs::read_to_string(dir.path().join("model.txt")).unwrap();
    assert!(
        model.trim_end().ends_with("pandas_categorical:[]"),
        "{}",
        &model[model.len() - 80..]
    );
    assert!(model.contains("num_cat=") && !model.contains("num_cat=0\nsplit_feature=\n"));
    audience(dir.path())
        .args([
            "score",
            "--model",
            "model.txt",
            "--data",
            "rows.csv",
            "--out",
            "scores.csv",
            "-q",
        ])
        .assert()
        .success();
    let ours: Vec<f64> = std::fs::read_to_string(dir.path().join("scores.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let expected: Vec<f64> = std::fs::read_to_string(dir.path().join("expected.txt"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(ours.len(), 4000);
    let diff = ours
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        diff <= 1e-12,
        "largest difference to Python lightgbm: {diff:e}"
    );
}
