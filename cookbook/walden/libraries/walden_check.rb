# frozen_string_literal: true

require 'open3'
require 'tmpdir'

module Walden
  # Raised when `walden check` finds problems; its message lists them.
  class CheckFailed < StandardError; end

  # Runs `walden check` against the envdir as it will be after the converge,
  # staged in a private directory, before anything on the host changes.
  module Check
    TIMEOUT = 300

    # ok: walden check exited 0; output: its report (stdout); errors: its
    # problems, one per line on stderr.
    Result = Struct.new(:ok, :output, :errors, keyword_init: true) do
      def problems
        lines = errors.to_s.lines.map(&:strip).reject(&:empty?)
        lines.empty? ? output.to_s.lines.map(&:strip).reject(&:empty?) : lines
      end
    end

    module_function

    # --envdir is one of walden's global options, so it goes before the
    # subcommand. As root the check runs as the service user: it connects to
    # PostgreSQL and uses GPG keys the way the agent will.
    def command(walden_bin, dir, user: nil, timeout: TIMEOUT, extra_args: [])
      cmd = [walden_bin, '--envdir', dir, 'check', *extra_args]
      cmd = ['runuser', '-u', user, '--', *cmd] if user && Process.uid.zero?
      timeout ? ['timeout', timeout.to_s, *cmd] : cmd
    end

    # args: Context#check_args (config, removals, walden_bin, timeout,
    # extra_args). runner: (*argv) -> [stdout, stderr, Process::Status].
    def run(args, runner: Open3.method(:capture3))
      config = args.fetch(:config)
      Dir.mktmpdir('.walden-check-', staging_parent(config.envdir)) do |dir|
        Envdir.stage!(dir, existing_dir: config.envdir, entries: config.entries, removals: args.fetch(:removals),
                           group: config.group)
        out, err, status = runner.call(*argv(args, dir))
        Result.new(ok: status.success?, output: out, errors: err)
      end
    end

    def argv(args, dir)
      command(args.fetch(:walden_bin), dir, user: args.fetch(:config).user, timeout: args.fetch(:timeout, TIMEOUT),
                                            extra_args: args.fetch(:extra_args, []))
    end

    def run!(args, runner: Open3.method(:capture3))
      result = run(args, runner: runner)
      return result if result.ok

      raise CheckFailed, "walden check failed, so the migration stopped before touching WAL-E:\n  " \
                         "#{result.problems.join("\n  ")}"
    end

    # After the converge the agent itself is asked (over its socket) to
    # probe the store and its directories from inside its sandbox; the
    # PostgreSQL side is the pre-migration check's business.
    SERVICE_ARGS = %w[--require-agent --no-postgres].freeze

    # Runs `walden check --require-agent` against the envdir in place;
    # raises CheckFailed with its problems when the agent could not do its
    # work (a store root read-only in its sandbox, no agent running, ...).
    def service_run!(args, runner: Open3.method(:capture3))
      out, err, status = runner.call(*service_argv(args))
      result = Result.new(ok: status.success?, output: out, errors: err)
      return result if result.ok

      raise CheckFailed, "walden check after the converge: walden.service cannot do its work:\n  " \
                         "#{result.problems.join("\n  ")}"
    end

    def service_argv(args)
      config = args.fetch(:config)
      command(args.fetch(:walden_bin), config.envdir, user: config.user, timeout: args.fetch(:timeout, TIMEOUT),
                                                      extra_args: SERVICE_ARGS)
    end

    # Next to the envdir, so the staged secrets stay under the same
    # protection as the real ones rather than in a shared /tmp.
    def staging_parent(envdir)
      parent = File.dirname(envdir)
      File.directory?(parent) ? parent : Dir.tmpdir
    end
  end
end
