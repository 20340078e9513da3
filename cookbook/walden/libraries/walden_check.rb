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

    # ok: walden check exited 0; output: what it printed, one line per problem.
    Result = Struct.new(:ok, :output, keyword_init: true) do
      def problems
        output.to_s.lines.map(&:strip).reject(&:empty?)
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

    # runner: (*argv) -> [output, Process::Status], injectable for the specs.
    def run(config:, removals:, walden_bin:, timeout: TIMEOUT, extra_args: [], runner: Open3.method(:capture2e))
      Dir.mktmpdir('.walden-check-', staging_parent(config.envdir)) do |dir|
        Envdir.stage!(dir, existing_dir: config.envdir, entries: config.entries, removals: removals, group: config.group)
        out, status = runner.call(*command(walden_bin, dir, user: config.user, timeout: timeout, extra_args: extra_args))
        Result.new(ok: status.success?, output: out)
      end
    end

    def run!(**args)
      result = run(**args)
      return result if result.ok

      raise CheckFailed, "walden check failed, so the migration stopped before touching WAL-E:\n  " \
                         "#{result.problems.join("\n  ")}"
    end

    # Next to the envdir, so the staged secrets stay under the same
    # protection as the real ones rather than in a shared /tmp.
    def staging_parent(envdir)
      parent = File.dirname(envdir)
      File.directory?(parent) ? parent : Dir.tmpdir
    end
  end
end
