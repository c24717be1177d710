# fish completion for shannot.  The candidates come from the binary itself
# (`shannot __complete fish WORD...`: "VALUE<TAB>DESCRIPTION" lines after
# a first line saying whether file names belong too), in its order.

function __shannot_complete
    set -l words (commandline -opc)
    set -e words[1]
    set -l cur (commandline -ct)
    set -l out (command shannot __complete fish $words "$cur" 2>/dev/null)
    or return
    set -l kind $out[1]
    set -e out[1]
    for line in $out
        echo $line
    end
    if test "$kind" = files
        set -l pre (string match -r -- '^--[^=]*=' "$cur")
        for path in (__fish_complete_path (string replace -r -- '^--[^=]*=' '' "$cur"))
            echo "$pre$path"
        end
    end
end

complete -c shannot -f -k -a '(__shannot_complete)'
