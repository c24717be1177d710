-- shannot help [COMMAND]
local cli = require("shannot.cli")
local const = require("shannot.const")
local err = require("shannot.err")
local text = require("shannot.text")

return {
  usage = "shannot help [COMMAND]",
  help = "Shows the list of commands, or the options and details of one command.",
  needs_config = false,
  run = function(_, args)
    if args[1] == nil then
      cli.out(cli.general_help(), "\n")
      return const.EXIT.OK
    end
    local help = cli.command_help(args[1])
    if not help then
      return nil, err.usage('help: unknown command "%s"; see "shannot help"', text.inert(args[1]))
    end
    cli.out(help, "\n")
    return const.EXIT.OK
  end,
}
