# bash completion for shannot.  The candidates come from the binary
# itself (`shannot __complete bash WORD...`), so they follow its commands,
# options, profiles, remotes and sessions; this file only asks and adds
# file names where the answer says so.

_shannot() {
    local line=${COMP_LINE:0:COMP_POINT}
    local -a words
    read -ra words <<< "$line"
    if [[ ${#words[@]} -eq 0 || $line =~ [[:space:]]$ ]]; then
        words+=("")
    fi
    local cur=${words[${#words[@]}-1]}
    local bin=${words[0]}
    [[ $bin == */* && -x $bin ]] || bin=shannot
    local out
    out=$(command "$bin" __complete bash "${words[@]:1}" 2>/dev/null) || return 0
    local -a lines
    mapfile -t lines <<< "$out"
    # readline replaces only what follows the last = or : of the word
    local tail=${cur##*[=:]}
    local prefix=${cur%"$tail"}
    COMPREPLY=()
    local l
    for l in "${lines[@]:1}"; do
        [[ -n $l ]] || continue
        l=${l%%$'\t'*}
        COMPREPLY+=("${l#"$prefix"}")
    done
    if [[ ${lines[0]} == files ]]; then
        compopt -o filenames 2>/dev/null
        local f
        while IFS= read -r f; do
            COMPREPLY+=("$f")
        done < <(compgen -f -- "$tail")
    fi
    compopt -o nosort 2>/dev/null
    return 0
}

complete -F _shannot shannot
