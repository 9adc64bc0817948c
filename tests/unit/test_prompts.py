from specialists.prompts import STOP_STRINGS, Turn, render


def test_gemma_base_starts_with_bos_and_ends_ready_for_an_answer():
    prompt = render("gemma_base", "Be brief.", [Turn("user", "What is 2+2?")], [])
    assert prompt.startswith("<bos>Be brief.")
    assert prompt.endswith("Question: What is 2+2?\nAnswer:")
    assert prompt.count("<bos>") == 1


def test_passages_are_numbered_and_history_kept():
    turns = [Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "and?")]
    prompt = render("gemma_base", "", turns, [("docs/a.md", "Alpha."), ("docs/b.md", "Beta.")])
    assert "[1] (docs/a.md) Alpha." in prompt and "[2] (docs/b.md) Beta." in prompt
    assert prompt.index("Question: hi") < prompt.index("Answer: hello") < prompt.index("and?")


def test_gemma_instruct_folds_system_into_first_user_turn():
    prompt = render("gemma", "SYS", [Turn("system", "more"), Turn("user", "q")], [])
    assert prompt.startswith("<bos><start_of_turn>user\nSYS\n\nmore\n\nq<end_of_turn>")
    assert prompt.endswith("<start_of_turn>model\n")


def test_every_format_carries_system_question_passages_and_has_stop_strings():
    for fmt in ("gemma", "gemma_base", "chatml", "plain"):
        prompt = render(fmt, "SYSTEM-X", [Turn("user", "QUESTION-Y")], [("src", "PASSAGE-Z")])
        positions = [prompt.find(t) for t in ("SYSTEM-X", "PASSAGE-Z", "QUESTION-Y")]
        assert -1 not in positions and positions == sorted(positions), (fmt, prompt)
        assert STOP_STRINGS[fmt], fmt  # stop strings end the answer (they apply to output)


def test_llama3_puts_instructions_in_its_system_header_and_passages_in_the_question():
    from specialists.prompts import STOP_STRINGS, Turn, render

    prompt = render("llama3", "Be brief.", [Turn("user", "Hi?")], [("a.md", "Passage.")])
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    system = prompt.split("<|eot_id|>")[0]
    assert "Be brief." in system and "Passage." not in system
    user = "<|start_header_id|>user<|end_header_id|>\n\nUse these passages"
    assert user in prompt and "[1] (a.md) Passage.\n\nHi?<|eot_id|>" in prompt
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert STOP_STRINGS["llama3"] == ["<|eot_id|>"]


def test_passages_never_change_the_prefix_before_the_last_question():
    history = [Turn("system", "S"), Turn("user", "first"), Turn("assistant", "reply")]
    for fmt in ("gemma", "gemma_base", "chatml", "llama3", "plain"):
        bare = render(fmt, "SYS", [*history, Turn("user", "second")], [])
        prompts = [
            render(fmt, "SYS", [*history, Turn("user", "second")], [(f"s{i}", f"PASSAGE {i}")])
            for i in range(3)
        ]
        cut = bare.index("second")
        prefix = bare[: bare.rindex("reply")]
        assert all(p.startswith(prefix) for p in prompts), fmt
        assert all(p.index("PASSAGE") > len(prefix) for p in prompts), fmt
        assert all(p.endswith(bare[cut:]) for p in prompts), fmt
