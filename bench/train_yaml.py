"""The benchmarks' training configs: one axolotl YAML shape for every training row (packed
completion data, learning rate 1e-4 without warm-up, a loss logged every step, no validation)."""


def write_train_yaml(path, base_model, tokenizer, text, output_dir, sequence_len, micro_batch_size,
                     gradient_accumulation_steps, max_steps, differential, extra=""):
    with open(path, "w") as f:
        f.write(f"base_model: {base_model}\ntokenizer_config: {tokenizer}\ndatasets:\n  - path: {text}\n"
                f"    type: completion\nsequence_len: {sequence_len}\nsample_packing: true\n"
                f"micro_batch_size: {micro_batch_size}\ngradient_accumulation_steps: {gradient_accumulation_steps}\n"
                f"max_steps: {max_steps}\nlearning_rate: 1.0e-4\nwarmup_steps: 0\nlogging_steps: 1\nval_set_size: 0\n"
                f"output_dir: {output_dir}\nsave_total_limit: 1\n" + ("diff_attention: true\n" if differential else "")
                + extra)
    return path
